// The documents page: no framework. Every state-changing request carries
// the session's CSRF token; the session itself is an HttpOnly cookie.
"use strict";

const $ = (id) => document.getElementById(id);
let csrf = "";
let me = "";

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function fail(error) {
  status(error.message, true);
}

async function call(method, path, body) {
  const headers = { "x-csrf-token": csrf };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    throw new Error(answer.error ?? `HTTP ${response.status}`);
  }
  return response.status === 204 ? null : await response.json();
}

function formatSize(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function element(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function button(text, label, action) {
  const node = element("button", text, { type: "button", "aria-label": label });
  node.addEventListener("click", () => action().catch(fail));
  return node;
}

function row(doc) {
  const tr = element("tr", undefined, { "data-id": doc.id });
  const link = element("a", doc.name, { href: `/api/documents/${doc.id}`, download: doc.name });
  const name = element("td");
  name.append(link);
  const readers = element("td");
  for (const reader of doc.sharedWith) {
    const chip = element("span", reader, { class: "reader" });
    if (doc.owner === me) {
      chip.append(button("×", `Unshare with ${reader}`, async () => {
        await call("DELETE", `/api/documents/${doc.id}/shares/${encodeURIComponent(reader)}`);
        await refresh();
      }));
    }
    readers.append(chip);
  }
  const actions = element("td", undefined, { class: "actions" });
  if (doc.owner === me) {
    const input = element("input", undefined, {
      placeholder: "user",
      "aria-label": `Share ${doc.name} with`,
    });
    actions.append(
      input,
      button("Share", `Share ${doc.name}`, async () => {
        await call("POST", `/api/documents/${doc.id}/shares`, { user: input.value.trim() });
        status(`Shared ${doc.name} with ${input.value.trim()}.`);
        await refresh();
      }),
      " ",
      button("Delete", `Delete ${doc.name}`, async () => {
        if (!confirm(`Delete ${doc.name}?`)) return;
        await call("DELETE", `/api/documents/${doc.id}`);
        await refresh();
      }),
    );
  }
  tr.append(
    name,
    element("td", formatSize(doc.size), { class: "size" }),
    element("td", doc.owner),
    readers,
    actions,
  );
  return tr;
}

async function refresh() {
  const docs = await call("GET", "/api/documents");
  $("list").replaceChildren(...docs.map(row));
  $("empty").hidden = docs.length > 0;
}

function show(user) {
  me = user;
  $("user").textContent = user;
  $("who").hidden = user === "";
  $("signin").hidden = user !== "";
  $("documents").hidden = user === "";
}

function upload(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/documents?name=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader("content-type", file.type || "application/octet-stream");
    xhr.setRequestHeader("x-csrf-token", csrf);
    const progress = $("progress");
    progress.hidden = false;
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      progress.value = event.loaded / event.total;
      $("percent").textContent = `${Math.floor(100 * event.loaded / event.total)} %`;
    });
    xhr.addEventListener("load", () => {
      progress.hidden = true;
      $("percent").textContent = "";
      if (xhr.status === 201) resolve(JSON.parse(xhr.responseText));
      else reject(new Error(JSON.parse(xhr.responseText || "{}").error ?? `HTTP ${xhr.status}`));
    });
    xhr.addEventListener("error", () => reject(new Error("Cannot upload: the connection failed")));
    xhr.send(file);
  });
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const session = await call("POST", "/session", {
      name: $("name").value.trim(),
      token: $("token").value.trim(),
    });
    csrf = session.csrf;
    $("token").value = "";
    show(session.user);
    status("");
    await refresh();
  } catch (error) {
    fail(error);
  }
});

$("signout").addEventListener("click", async () => {
  await call("DELETE", "/session").catch(() => {});
  csrf = "";
  show("");
});

$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (file === undefined) return;
  try {
    const doc = await upload(file);
    status(`Uploaded ${doc.name}.`);
    $("file").value = "";
    await refresh();
  } catch (error) {
    fail(error);
  }
});

(async () => {
  const response = await fetch("/session");
  if (response.ok) {
    const session = await response.json();
    csrf = session.csrf;
    show(session.user);
    await refresh().catch(fail);
  } else {
    show("");
  }
})();
