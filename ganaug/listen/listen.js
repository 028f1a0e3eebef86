// ganaug listening test page: one clip at a time, keyboard first, answers saved by the local server.
"use strict";

const CANT_TELL_KEY = "x";
const LABEL_KEYS = "1234567890abcdefghijklmnopqrstuvwyz".split("");  // no "x": that is "can't tell"
const SCALES = {
  quality: ["bad", "poor", "fair", "good", "excellent"],
  intelligibility: ["very hard", "hard", "fair", "easy", "very easy"],
  diversity: ["all same", "little", "some", "much", "all different"],
};
const $ = (id) => document.getElementById(id);

const page = {
  listener: null, state: null, steps: [], step: 0, answer: null, question: 0, plays: 0, shownAt: 0, busy: false,
};

function listenerId() {
  const storeKey = "ganaug-listen-listener";
  let id = null;
  try { id = localStorage.getItem(storeKey); } catch (e) { /* storage off: a new id per visit */ }
  if (!id || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    id = "l" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    try { localStorage.setItem(storeKey, id); } catch (e) { /* see above */ }
  }
  return id;
}

function status(text, ok) {
  const el = $("status");
  el.textContent = text || "";
  el.className = ok ? "ok" : "";
}

// The test as a list of steps: each block's clips, then one diversity question for that block.
function buildSteps(state) {
  const answered = new Set(state.answered), rated = new Set(state.rated_blocks);
  const steps = [];
  let block = null, members = [];
  const closeBlock = () => {
    if (block !== null) steps.push({ kind: "diversity", block, size: members.length, done: rated.has(block) });
  };
  for (const item of state.items) {
    if (item.block !== block) { closeBlock(); block = item.block; members = []; }
    members.push(item);
    steps.push({ kind: "clip", item, done: answered.has(item.id) });
  }
  closeBlock();
  return steps;
}

function choiceButton(container, key, value, text, onPick) {
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.key = key;
  b.dataset.value = value;
  b.setAttribute("aria-pressed", "false");
  b.innerHTML = `<kbd></kbd> <span></span>`;
  b.querySelector("kbd").textContent = key;
  b.querySelector("span").textContent = text;
  b.addEventListener("click", () => { b.blur(); onPick(value); });
  container.appendChild(b);
}

function setupChoices(state) {
  const labels = $("labels");
  state.labels.forEach((label, i) => choiceButton(labels, LABEL_KEYS[i], label, label, (v) => pick("label", v)));
  choiceButton(labels, CANT_TELL_KEY, state.choices[state.choices.length - 1], "can't tell", (v) => pick("label", v));
  document.querySelectorAll(".rating").forEach((el) => {
    const name = el.dataset.name;
    SCALES[name].forEach((word, i) => choiceButton(el, String(i + 1), String(i + 1), word,
                                                   (v) => pick(name, Number(v))));
  });
}

function render() {
  const steps = page.steps, clips = steps.filter((s) => s.kind === "clip");
  const doneClips = clips.filter((s) => s.done).length;
  $("progress").max = clips.length;
  $("progress").value = doneClips;
  const current = steps[page.step];
  const blocks = steps.filter((s) => s.kind === "diversity").length;
  const blockNo = steps.slice(0, page.step + 1).filter((s) => s.kind === "diversity").length + 1;
  for (const id of ["clip", "diversity", "done"]) $(id).hidden = true;
  if (!current) {
    document.body.dataset.step = "done";
    $("progress-text").textContent = `${doneClips} of ${clips.length} clips answered`;
    $("done").hidden = false;
    return;
  }
  document.body.dataset.step = current.kind;
  const clipNo = steps.slice(0, page.step + 1).filter((s) => s.kind === "clip").length;
  $("progress-text").textContent = current.kind === "clip"
    ? `Clip ${clipNo} of ${clips.length} · set ${Math.min(blockNo, blocks)} of ${blocks} · ${doneClips} answered`
    : `Set ${blockNo - 1} of ${blocks} finished · ${doneClips} of ${clips.length} clips answered`;
  const section = $(current.kind);
  section.hidden = false;
  section.dataset.id = current.kind === "clip" ? current.item.id : current.block;
  section.querySelectorAll(".choices button").forEach((b) => {
    const name = b.parentElement.dataset.name || "label";
    b.setAttribute("aria-pressed", String(page.answer[name] !== undefined && String(page.answer[name]) === b.dataset.value));
  });
  section.querySelectorAll("fieldset.question").forEach((f) => {
    f.classList.toggle("active", Number(f.dataset.q) === page.question);
  });
  $("plays").textContent = current.kind === "clip" ? (page.plays ? `played ${page.plays}×` : "not played yet") : "";
  if (current.kind === "diversity") $("block-size").textContent = String(current.size);
}

function show(stepIndex) {
  page.step = stepIndex;
  page.answer = {};
  page.question = 0;
  page.plays = 0;
  page.shownAt = performance.now();
  document.querySelectorAll("fieldset.question").forEach((f) => f.classList.remove("missing"));
  const current = page.steps[stepIndex];
  const audio = $("audio");
  audio.pause();
  if (current && current.kind === "clip") {
    audio.src = current.item.file;
    play();
  } else {
    audio.removeAttribute("src");
    audio.load();
  }
  render();
}

function nextStep() {
  const i = page.steps.findIndex((s) => !s.done);
  show(i < 0 ? page.steps.length : i);
}

function play() {
  const audio = $("audio");
  if (!audio.src) return;
  audio.currentTime = 0;
  const started = audio.play();
  if (started) started.catch(() => status("Press Space (or the play button) to hear the clip.", true));
}

function pick(name, value) {
  const current = page.steps[page.step];
  if (!current || page.busy) return;
  page.answer[name] = value;
  const order = current.kind === "clip" ? ["label", "quality", "intelligibility"] : ["diversity"];
  page.question = Math.min(order.indexOf(name) + 1, order.length - 1);
  document.querySelectorAll("fieldset.question").forEach((f) => f.classList.remove("missing"));
  status("");
  render();
}

async function submit() {
  const current = page.steps[page.step];
  if (!current || page.busy) return;
  let body;
  if (current.kind === "clip") {
    const missing = ["label", "quality", "intelligibility"].filter((k) => page.answer[k] === undefined);
    if (!page.plays) return status("Listen to the clip first (Space).");
    if (missing.length) {
      missing.forEach((k) => $(`q-${k}`).classList.add("missing"));
      page.question = ["label", "quality", "intelligibility"].indexOf(missing[0]);
      render();
      return status(`Answer ${missing.join(" and ")} first.`);
    }
    body = { listener: page.listener, kind: "clip", id: current.item.id, label: page.answer.label,
             quality: page.answer.quality, intelligibility: page.answer.intelligibility, plays: page.plays,
             elapsed_ms: Math.round(performance.now() - page.shownAt) };
  } else {
    if (page.answer.diversity === undefined) return status("Rate the diversity (1–5) first.");
    body = { listener: page.listener, kind: "diversity", block: current.block, diversity: page.answer.diversity };
  }
  page.busy = true;
  status("saving…", true);
  try {
    const reply = await fetch("api/answer", { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify(body) });
    const result = await reply.json();
    if (!reply.ok) throw new Error(result.error || reply.statusText);
    current.done = true;
    status("");
    nextStep();
  } catch (err) {
    status(`Not saved (${err.message}). Is the server still running? Press Enter to try again.`);
  } finally {
    page.busy = false;
  }
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const current = page.steps[page.step];
  if (!current) return;
  const key = event.key.toLowerCase();
  if (key === " " || key === "spacebar") {
    event.preventDefault();
    if (current.kind === "clip") play();
    return;
  }
  if (key === "enter") { event.preventDefault(); submit(); return; }
  const count = current.kind === "clip" ? 3 : 1;
  if (key === "arrowdown") { event.preventDefault(); page.question = Math.min(page.question + 1, count - 1); render(); return; }
  if (key === "arrowup" || key === "backspace") {
    event.preventDefault(); page.question = Math.max(page.question - 1, 0); render(); return;
  }
  const fieldset = $(current.kind).querySelector(`fieldset.question[data-q="${page.question}"]`);
  const button = fieldset && Array.from(fieldset.querySelectorAll(".choices button")).find((b) => b.dataset.key === key);
  if (button) { event.preventDefault(); button.click(); }
}

async function start() {
  page.listener = listenerId();
  $("listener").textContent = `listener id: ${page.listener}`;
  try {
    const reply = await fetch(`api/state?listener=${encodeURIComponent(page.listener)}`, { cache: "no-store" });
    page.state = await reply.json();
    if (!reply.ok) throw new Error(page.state.error || reply.statusText);
  } catch (err) {
    $("progress-text").textContent = "";
    return status(`Cannot load the test (${err.message}). Start it with: ganaug listen --serve DIR`);
  }
  setupChoices(page.state);
  page.steps = buildSteps(page.state);
  const audio = $("audio");
  audio.addEventListener("playing", () => { page.plays += 1; $("play").classList.add("playing"); render(); });
  for (const ev of ["pause", "ended"]) audio.addEventListener(ev, () => $("play").classList.remove("playing"));
  audio.addEventListener("error", () => status("This clip could not be played; press Space to try again."));
  $("play").addEventListener("click", play);
  $("submit").addEventListener("click", submit);
  $("submit-diversity").addEventListener("click", submit);
  for (const id of ["play", "submit", "submit-diversity"]) $(id).addEventListener("mouseup", () => $(id).blur());
  document.querySelectorAll("fieldset.question").forEach((f) => f.addEventListener("click", (event) => {
    if (event.target.closest("button")) return;  // a choice: pick() moved on already
    page.question = Number(f.dataset.q); render();
  }));
  document.addEventListener("keydown", onKey);
  nextStep();
}

start();
