// The little the pages do with script: copy buttons, and the events page
// following the log live. Everything else works without it. Values from
// the server are set as text (textContent), never parsed as HTML.
"use strict";

function wireCopyButtons(root) {
  if (!navigator.clipboard) {
    return;
  }
  // Each button copies the text of the element before it.
  for (const button of root.querySelectorAll("button.copy")) {
    const source = button.previousElementSibling;
    if (!source) {
      continue;
    }
    button.hidden = false;
    button.addEventListener("click", async () => {
      const label = button.textContent;
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch (_) {
        button.textContent = "Copy failed";
      }
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  }
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) {
    td.className = className;
  }
  td.textContent = text;
  return td;
}

// One event of the stream as a row like the server's.
function eventRow(event) {
  const row = document.createElement("tr");
  row.className = "new";
  row.appendChild(cell(String(event.sequence), "number"));
  const when = document.createElement("td");
  const time = document.createElement("time");
  time.dateTime = event.created_at;
  time.title = event.created_at;
  time.textContent = event.created_at.replace("T", " ").slice(0, 16) + " UTC (just now)";
  when.appendChild(time);
  row.appendChild(when);
  const type = document.createElement("td");
  const code = document.createElement("code");
  code.textContent = event.event_type;
  type.appendChild(code);
  row.appendChild(type);
  const subject = document.createElement("td");
  if (event.subject_kind === "package" && /^[0-9a-f-]{36}$/.test(event.subject_id)) {
    const link = document.createElement("a");
    link.href = "/ui/packages/" + event.subject_id;
    link.textContent = event.subject_id;
    subject.appendChild(link);
  } else {
    subject.textContent = event.subject_kind + " " + event.subject_id;
  }
  row.appendChild(subject);
  row.appendChild(cell(event.actor));
  return row;
}

function followEvents() {
  const table = document.getElementById("events");
  if (!table || !table.dataset.liveSince || !window.EventSource) {
    return;
  }
  const wantedType = table.dataset.filterType;
  const wantedSubject = table.dataset.filterSubject;
  const status = document.getElementById("live-status");
  const body = table.tBodies[0];
  // Same origin: the session cookie goes with it.
  const source = new EventSource("/v1/events/stream?since=" + encodeURIComponent(table.dataset.liveSince));
  source.onopen = () => { if (status) status.textContent = "Live: new events appear here as they are recorded."; };
  source.onerror = () => { if (status) status.textContent = "Live updates paused; retrying."; };
  const show = (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    if ((wantedType && event.event_type !== wantedType) || (wantedSubject && event.subject_id !== wantedSubject)) {
      return;
    }
    body.insertBefore(eventRow(event), body.firstChild);
  };
  // The stream names each message by its event type.
  const known = new Set();
  const listen = (type) => {
    if (!known.has(type)) {
      known.add(type);
      source.addEventListener(type, show);
    }
  };
  // The server lists its event types on the table.
  for (const type of (table.dataset.eventTypes || "").split(" ")) {
    if (type) {
      listen(type);
    }
  }
  if (wantedType) {
    listen(wantedType);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  wireCopyButtons(document);
  followEvents();
});

// Uploads into an open package through the resumable upload endpoint
// (tus 1.0, tus-js-client): each file becomes `folder/name`; an upload
// cut by the network resumes by itself. The session's CSRF token goes in
// a header, as the server asks of a browser session's requests.
function wireUploads() {
  const form = document.getElementById("upload");
  if (!form || !window.tus || !window.tus.isSupported) {
    return;
  }
  form.hidden = false;
  const status = document.getElementById("upload-status");
  const csrf = document.querySelector("meta[name='csrf-token']");
  const headers = csrf ? { "X-CSRF-Token": csrf.content } : {};
  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const files = Array.from(document.getElementById("upload-files").files);
    const folder = document.getElementById("upload-folder").value.trim().replace(/^\/+|\/+$/g, "");
    const button = form.querySelector("button[type='submit']");
    button.disabled = true;
    let failed = false;
    for (const [index, file] of files.entries()) {
      const path = folder ? folder + "/" + file.name : file.name;
      try {
        await new Promise((resolve, reject) => {
          const upload = new tus.Upload(file, {
            endpoint: form.dataset.endpoint,
            headers,
            chunkSize: 64 * 1024 * 1024,
            retryDelays: [0, 1000, 3000, 5000],
            removeFingerprintOnSuccess: true,
            metadata: { relative_path: path, media_type: file.type || "application/octet-stream" },
            onProgress: (sent, total) => {
              const percent = total ? Math.floor((sent / total) * 100) : 100;
              status.textContent = "Uploading " + path + " (" + (index + 1) + " of " + files.length + "): " + percent + " %";
            },
            onSuccess: resolve,
            onError: reject,
          });
          upload.findPreviousUploads().then((previous) => {
            if (previous.length) {
              upload.resumeFromPreviousUpload(previous[0]);
            }
            upload.start();
          });
        });
      } catch (error) {
        failed = true;
        // The server's problem detail, when it sent one.
        let detail = String(error && error.message ? error.message : error);
        const body = error && error.originalResponse && error.originalResponse.getBody();
        try {
          detail = JSON.parse(body).detail || detail;
        } catch (_) { /* not problem+json */ }
        status.textContent = path + " was refused: " + detail;
        status.classList.add("problem");
        break;
      }
    }
    button.disabled = false;
    if (!failed) {
      status.textContent = "Uploaded " + files.length + (files.length === 1 ? " file." : " files.") + " Reloading…";
      window.location.reload();
    }
  });
}

document.addEventListener("DOMContentLoaded", wireUploads);
