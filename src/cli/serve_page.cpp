#include "cli/serve_page.h"

namespace tlm::cli {

const char* serve_page_html() {
  return R"tlm_page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tlm serve</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 56em; color: #222; }
  textarea { width: 100%; height: 5em; font: inherit; }
  .model { display: inline-block; vertical-align: top; margin: 0 2em 1em 0; min-width: 16em; }
  .row { display: flex; align-items: center; margin: 2px 0; }
  .name { width: 8em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .bar { height: 1em; background: #3a7bd5; margin-right: .5em; }
  .member .bar { background: #9bb8e0; }
  #error { color: #b00; }
</style>
</head>
<body>
<h1>tlm serve</h1>
<p id="about">loading the models...</p>
<textarea id="text" placeholder="Type a text to classify"></textarea>
<p><button id="go">Classify</button> <span id="time"></span> <span id="error"></span></p>
<div id="out"></div>
<script>
const $ = (id) => document.getElementById(id);
fetch("/v1/models").then((r) => r.json()).then((m) => {
  $("about").textContent = (m.committee ? `a soft committee of ${m.members.length} models` : "one model") +
    `, labels: ${m.labels.join(", ")}`;
});
function bars(title, probs, cls) {
  const div = document.createElement("div");
  div.className = "model " + cls;
  const h = document.createElement("h3");
  h.textContent = title;
  div.appendChild(h);
  for (const [label, p] of Object.entries(probs)) {
    const row = document.createElement("div");
    row.className = "row";
    row.dataset.label = label;
    row.innerHTML = '<span class="name"></span><span class="bar"></span><span class="value"></span>';
    row.querySelector(".name").textContent = label;
    row.querySelector(".bar").style.width = (p * 12).toFixed(2) + "em";
    row.querySelector(".value").textContent = (100 * p).toFixed(1) + "%";
    div.appendChild(row);
  }
  return div;
}
async function classify() {
  $("error").textContent = "";
  const t0 = performance.now();
  const r = await fetch("/v1/classify", {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify({texts: [$("text").value], members: true})});
  const body = await r.json();
  if (!r.ok) { $("error").textContent = body.error; return; }
  const res = body.results[0];
  const out = $("out");
  out.replaceChildren(bars(`${res.members.length > 1 ? "committee" : "model"}: ${res.label}`, res.probs, "committee"));
  if (res.members.length > 1) res.members.forEach((p, i) => out.appendChild(bars(`member ${i + 1}`, p, "member")));
  $("time").textContent = `${body.ms.toFixed(1)} ms on the server, ${(performance.now() - t0).toFixed(1)} ms here`;
}
$("go").addEventListener("click", classify);
</script>
</body>
</html>
)tlm_page";
}

}  // namespace tlm::cli
