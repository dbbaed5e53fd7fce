// avs serve: one page, four views (search, topics, compare, export), everything read from /api/.
"use strict";

const PAGE = 50; // shots per page of a ranking

const $ = (id) => document.getElementById(id);

async function api(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function status(id, text, error = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", error);
}

function fmt(x) {
  return x === null || x === undefined ? "—" : Number(x).toFixed(4);
}

function shotCard(r) {
  const card = document.createElement("div");
  card.className = "shot" + (r.judgment ? " " + r.judgment.replace(" ", "-") : "");
  card.dataset.shot = r.shot;
  const thumb = document.createElement("div");
  thumb.className = "thumb";
  if (r.thumbnail) {
    const img = document.createElement("img");
    img.src = r.thumbnail;
    img.alt = r.shot;
    img.loading = "lazy";
    thumb.appendChild(img);
  } else {
    thumb.textContent = r.video ? `video ${r.video}` : "no keyframe";
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  const id = document.createElement("div");
  id.className = "id";
  id.title = r.shot;
  id.textContent = r.shot;
  const sub = document.createElement("div");
  sub.className = "sub";
  const where = document.createElement("span");
  where.textContent = [r.rank !== undefined ? `#${r.rank}` : "", r.score !== undefined ? r.score.toFixed(4) : ""]
    .filter(Boolean)
    .join(" · ");
  sub.appendChild(where);
  if (r.judgment) {
    const mark = document.createElement("span");
    mark.className = "mark";
    mark.title = r.judgment;
    mark.textContent = r.judgment === "relevant" ? "✓" : r.judgment === "not relevant" ? "✗" : "?";
    sub.appendChild(mark);
  }
  meta.append(id, sub);
  card.append(thumb, meta);
  return card;
}

function showRanking(results, gridId, pagerId, page = 0) {
  const grid = $(gridId);
  grid.replaceChildren(...results.slice(page * PAGE, (page + 1) * PAGE).map(shotCard));
  const pager = $(pagerId);
  const pages = Math.ceil(results.length / PAGE);
  pager.replaceChildren();
  if (pages < 2) return;
  for (let p = 0; p < pages; p++) {
    const b = document.createElement("button");
    b.textContent = `${p * PAGE + 1}–${Math.min((p + 1) * PAGE, results.length)}`;
    if (p === page) b.className = "current";
    b.addEventListener("click", () => showRanking(results, gridId, pagerId, p));
    pager.appendChild(b);
  }
}

// --- search ---

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = $("q").value;
  status("search-status", "searching…");
  try {
    const r = await api(`/api/search?k=1000&q=${encodeURIComponent(q)}`);
    status("search-status", `${r.results.length} shots for “${r.query}” in ${r.elapsed_ms.toFixed(1)} ms`);
    showRanking(r.results, "search-results", "search-pager");
  } catch (e) {
    status("search-status", e.message, true);
    $("search-results").replaceChildren();
    $("search-pager").replaceChildren();
  }
});

// --- topics ---

let topicsLoaded = null;

function loadTopics() {
  if (!topicsLoaded) {
    topicsLoaded = api("/api/topics").then((r) => {
      for (const select of [$("topic-select"), $("compare-topic")]) {
        select.replaceChildren(
          ...r.topics.map((t) => {
            const o = document.createElement("option");
            o.value = t.num;
            o.textContent = `${t.num}: ${t.text}`;
            return o;
          })
        );
      }
      return r.topics;
    });
  }
  return topicsLoaded;
}

async function showTopic(num) {
  status("topic-status", "ranking…");
  try {
    const r = await api(`/api/topics/${num}`);
    $("topic-labels").replaceChildren(
      ...r.labels.map((l) => {
        const s = document.createElement("span");
        s.textContent = l;
        return s;
      })
    );
    const counts = { relevant: 0, "not relevant": 0, unjudged: 0 };
    for (const x of r.results) counts[x.judgment]++;
    status(
      "topic-status",
      `${r.results.length} shots in ${r.elapsed_ms.toFixed(1)} ms: ${counts.relevant} relevant, ` +
        `${counts["not relevant"]} not relevant, ${counts.unjudged} unjudged`
    );
    const table = $("topic-measures");
    table.replaceChildren();
    if (r.measures) {
      const names = Object.keys(r.measures);
      const head = table.insertRow();
      const row = table.insertRow();
      for (const n of names) {
        const th = document.createElement("th");
        th.textContent = n;
        head.appendChild(th);
        const td = row.insertCell();
        td.textContent = fmt(r.measures[n]);
        td.dataset.measure = n;
      }
    }
    showRanking(r.results, "topic-results", "topic-pager");
  } catch (e) {
    status("topic-status", e.message, true);
  }
}

$("topic-select").addEventListener("change", (e) => showTopic(e.target.value));

// --- compare ---

async function loadRuns() {
  const r = await api("/api/runs");
  for (const [i, select] of [$("run-a"), $("run-b")].entries()) {
    select.replaceChildren(
      ...r.runs.map((name) => {
        const o = document.createElement("option");
        o.value = o.textContent = name;
        return o;
      })
    );
    if (r.runs.length > i) select.value = r.runs[i];
  }
  if (r.runs.length < 2) status("compare-status", "start the server with --runs A B (two runs or more) to compare");
}

$("compare-go").addEventListener("click", async () => {
  const a = $("run-a").value;
  const b = $("run-b").value;
  const topic = $("compare-topic").value;
  status("compare-status", "comparing…");
  try {
    const r = await api(`/api/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}&topic=${topic}`);
    status("compare-status", `topic ${r.topic}: ${r.overlap} shots in both runs`);
    $("compare-summary").innerHTML = "";
    const table = document.createElement("table");
    table.className = "measures";
    const head = table.insertRow();
    for (const h of ["run", "shots", "infAP (this topic)", "only in this run"]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    }
    for (const side of [r.a, r.b]) {
      const row = table.insertRow();
      for (const v of [side.run, side.shots, fmt(side.infAP), side.only_here.length]) row.insertCell().textContent = v;
    }
    $("compare-summary").appendChild(table);
    $("only-a-title").textContent = `only in ${r.a.run}`;
    $("only-b-title").textContent = `only in ${r.b.run}`;
    $("only-a").replaceChildren(...r.a.only_here.slice(0, PAGE).map(shotCard));
    $("only-b").replaceChildren(...r.b.only_here.slice(0, PAGE).map(shotCard));
    const plot = $("compare-plot");
    if (r.per_topic.length) {
      plot.src = `/api/compare/plot.png?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
      plot.hidden = false;
    } else {
      plot.hidden = true;
    }
  } catch (e) {
    status("compare-status", e.message, true);
  }
});

// --- export ---

function exportLink() {
  const pid = encodeURIComponent($("export-pid").value);
  const format = $("export-format").value;
  $("export-link").href = `/api/export?format=${format}&pid=${pid}`;
}
$("export-pid").addEventListener("input", exportLink);
$("export-format").addEventListener("change", exportLink);

// --- the views ---

async function route() {
  const view = (location.hash || "#search").slice(1);
  for (const name of ["search", "topics", "compare", "export"]) {
    $(`page-${name}`).hidden = name !== view;
    $(`nav-${name}`).classList.toggle("active", name === view);
  }
  if (view === "topics" || view === "compare") {
    const topics = await loadTopics();
    if (view === "topics" && topics.length && !$("topic-results").children.length) showTopic($("topic-select").value);
    if (view === "compare") loadRuns();
  }
  if (view === "export") exportLink();
}

window.addEventListener("hashchange", route);

api("/api/info").then((info) => {
  $("info").textContent =
    `${info.model} on ${info.collection} (${info.shots.toLocaleString()} shots)` +
    (info.topic_set ? ` · topics ${info.topic_set}` : "") +
    (info.judgments ? " · judgments" : "") +
    (info.approximate ? " · APPROXIMATE search (--ann)" : "");
  $("simulated").hidden = !info.simulated;
  if (info.simulated) $("export-pid").value = "SIMULATED-demo";
});
route();
