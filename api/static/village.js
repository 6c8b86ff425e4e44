// The village page's folder upload. Plain JS, no build step, nothing from elsewhere.
// Matching is asked of the server (POST /api/v1/households/match-files: one rule, in
// photocheck.filename_match); uploads go through the one upload API with an
// Idempotency-Key derived from the household and the file's bytes, so a reload or a
// double click stores nothing twice.
"use strict";

(function () {
  const API = "/api/v1";
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const T = data.text;
  const en = data.lang === "en";
  const csrfMeta = document.querySelector("meta[name=csrf]");
  const csrfHeaders = {};
  csrfHeaders[csrfMeta.dataset.header] = csrfMeta.content;
  const IMAGE = /\.(jpe?g|png|heic|heif|webp|tiff?|bmp)$/i;

  const table = document.getElementById("files");
  const tbody = table.querySelector("tbody");
  const confirmButton = document.getElementById("confirm");
  const practice = document.getElementById("practice");
  let pending = []; // {file, name, row, select}

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function householdSelect(choice, candidates) {
    const select = el("select", { class: "assign" });
    select.appendChild(el("option", { value: "" }, T.choose));
    // candidates first (the households the name points at), then the whole village
    const order = candidates.concat(data.households.filter((h) => !candidates.includes(h)));
    order.forEach((id) => {
      const head = data.heads[data.households.indexOf(id)];
      select.appendChild(el("option", { value: id }, id + " " + head));
    });
    select.appendChild(el("option", { value: "-" }, T.skip));
    select.value = choice || "";
    select.addEventListener("change", updateConfirm);
    return select;
  }

  function updateConfirm() {
    const ready = pending.length > 0 && pending.every((p) => p.select.value !== "");
    confirmButton.disabled = !ready;
  }

  async function collect(items) {
    // dropped folders: walk the entries; chosen files: take them as they are
    const out = [];
    async function walk(entry, path) {
      if (entry.isFile) {
        const file = await new Promise((ok, fail) => entry.file(ok, fail));
        out.push({ file: file, name: path + file.name });
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
          if (!batch.length) break;
          for (const child of batch) await walk(child, path + entry.name + "/");
        }
      }
    }
    for (const item of items) {
      if (item.entry) await walk(item.entry, "");
      else out.push({ file: item, name: item.webkitRelativePath || item.name });
    }
    return out.filter((f) => IMAGE.test(f.name));
  }

  async function api(path, options) {
    const r = await fetch(API + path, Object.assign({ credentials: "same-origin" }, options));
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(errorText(body, r.status));
    return body;
  }

  function errorText(body, status) {
    const e = (body && body.error) || {};
    return (en ? e.message : e.message_zh || e.message) || "HTTP " + status;
  }

  async function showFiles(files) {
    if (!files.length) return;
    const answer = await api("/households/match-files", {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" }, csrfHeaders),
      body: JSON.stringify({ filenames: files.map((f) => f.name) }),
    });
    tbody.textContent = "";
    pending = [];
    answer.files.forEach((m, i) => {
      const row = el("tr", { class: "file m-" + m.status, "data-status": m.status });
      row.appendChild(el("td", { class: "name" }, m.filename));
      const cell = el("td");
      const select = householdSelect(m.household_id, m.candidates.map((c) => c.household_id));
      cell.appendChild(select);
      cell.appendChild(el("div", { class: "muted status" }, T[m.status]));
      row.appendChild(cell);
      row.appendChild(el("td", { class: "progress" }));
      row.appendChild(el("td", { class: "verdict" }));
      tbody.appendChild(row);
      pending.push({ file: files[i].file, name: m.filename, row: row, select: select });
    });
    table.hidden = false;
    confirmButton.hidden = false;
    updateConfirm();
  }

  async function idempotencyKey(household, file) {
    const bytes = await file.arrayBuffer();
    let digest;
    if (window.crypto && crypto.subtle) {
      const hash = await crypto.subtle.digest("SHA-256", bytes);
      digest = Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
    } else {
      digest = [file.name, file.size, file.lastModified].join("|"); // not a secure context
    }
    return "village-page:" + household + ":" + digest;
  }

  function send(household, file, key, isPractice, bar) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      const q = isPractice ? "?practice=true" : "";
      xhr.open("POST", API + "/households/" + encodeURIComponent(household) + "/photos" + q);
      Object.entries(csrfHeaders).forEach(([k, v]) => xhr.setRequestHeader(k, v));
      if (!isPractice) xhr.setRequestHeader("Idempotency-Key", key);
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) bar.value = e.loaded / e.total;
      };
      xhr.onload = () => {
        let body = {};
        try {
          body = JSON.parse(xhr.responseText);
        } catch (_) {}
        resolve({ ok: xhr.status < 300, status: xhr.status, body: body });
      };
      xhr.onerror = () => resolve({ ok: false, status: 0, body: {} });
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }

  function reasonList(reasons) {
    const ul = el("ul", { class: "reasons" });
    reasons.forEach((r) => {
      const li = el("li", { "data-code": r.code }, en ? r.message_en : r.message_zh);
      li.appendChild(el("br"));
      li.appendChild(el("small", {}, en ? r.message_zh : r.message_en));
      ul.appendChild(li);
    });
    return ul;
  }

  function showVerdict(cell, result, isPractice) {
    cell.textContent = "";
    if (!result.ok) {
      cell.appendChild(el("span", { class: "error" }, errorText(result.body, result.status)));
      return;
    }
    const v = result.body.verdict;
    const label = T[v] + (isPractice ? (en ? " (practice, not stored)" : "（模拟，未保存）") : "");
    cell.appendChild(el("div", { class: "v-" + v, "data-verdict": v }, label));
    cell.appendChild(reasonList(result.body.reasons || []));
    const next = data.next_step[v];
    if (next) cell.appendChild(el("div", { class: "next" }, en ? next[1] : next[0]));
  }

  function updateHousehold(household, body) {
    const row = document.querySelector('#households tr[data-household="' + CSS.escape(household) + '"]');
    if (!row) return;
    row.className = "st-" + body.verdict;
    row.querySelector(".state").textContent = T[body.verdict];
    const cell = row.querySelector(".reasons-cell");
    cell.textContent = "";
    cell.appendChild(reasonList(body.reasons || []));
  }

  async function refreshRetakes() {
    const list = await api("/retakes", { headers: csrfHeaders });
    const ul = document.getElementById("retake-list");
    ul.textContent = "";
    list.forEach((r) => {
      const li = el("li", { "data-household": r.household_id });
      li.appendChild(el("b", {}, r.household_id));
      li.appendChild(document.createTextNode(" " + r.head_name + ": "));
      li.appendChild(reasonList(r.reasons || []));
      ul.appendChild(li);
    });
    document.getElementById("retake-count").textContent = String(list.length);
    document.getElementById("no-retakes").hidden = list.length > 0;
  }

  async function uploadAll(items) {
    const isPractice = practice.checked;
    for (const p of items) {
      const household = p.select.value;
      const cell = p.row.querySelector(".progress");
      cell.textContent = "";
      if (household === "-") {
        cell.textContent = T.skip;
        continue;
      }
      const bar = el("progress", { max: "1", value: "0" });
      cell.appendChild(bar);
      const key = await idempotencyKey(household, p.file);
      const result = await send(household, p.file, key, isPractice, bar);
      bar.value = 1;
      showVerdict(p.row.querySelector(".verdict"), result, isPractice);
      p.row.dataset.done = result.ok ? "ok" : "error";
      if (result.ok && !isPractice) updateHousehold(household, result.body);
    }
    if (!isPractice) await refreshRetakes();
    document.body.dataset.uploads = "done";
  }

  confirmButton.addEventListener("click", async () => {
    const chosen = pending.filter((p) => p.select.value !== "-").map((p) => p.select.value);
    if (new Set(chosen).size !== chosen.length) {
      alert(en ? "Two files are assigned to one household." : "有两个文件对应同一户，请修改。");
      return;
    }
    confirmButton.disabled = true;
    confirmButton.hidden = true; // a second click uploads nothing more
    pending.forEach((p) => (p.select.disabled = true));
    document.body.dataset.uploads = "running";
    const items = pending;
    pending = [];
    await uploadAll(items);
  });

  const drop = document.getElementById("dropzone");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const items = Array.from(e.dataTransfer.items || [])
      .map((i) => (i.webkitGetAsEntry ? { entry: i.webkitGetAsEntry() } : i.getAsFile()))
      .filter((i) => i && (i.entry || i.name));
    await showFiles(await collect(items));
  });
  ["folder-input", "files-input"].forEach((id) =>
    document.getElementById(id).addEventListener("change", async (e) => {
      await showFiles(await collect(Array.from(e.target.files)));
      e.target.value = "";
    }),
  );
  document.querySelectorAll("input.one-file").forEach((input) =>
    input.addEventListener("change", async () => {
      const file = input.files[0];
      if (!file) return;
      const row = el("tr", { class: "file" });
      row.appendChild(el("td", { class: "name" }, file.name));
      const select = householdSelect(input.dataset.household, [input.dataset.household]);
      select.disabled = true;
      const cell = el("td");
      cell.appendChild(select);
      row.appendChild(cell);
      row.appendChild(el("td", { class: "progress" }));
      row.appendChild(el("td", { class: "verdict" }));
      tbody.appendChild(row);
      table.hidden = false;
      input.value = "";
      await uploadAll([{ file: file, name: file.name, row: row, select: select }]);
    }),
  );
})();
