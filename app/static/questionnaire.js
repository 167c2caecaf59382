/* Live branching for the questionnaire: evaluates the server's JSON logic (app/questionnaire/branching.py)
   with the same semantics, hides questions whose logic is false and disables their inputs so they are not
   sent. Without this script every question shows with its "answer only if" text; the server decides. */
(function () {
  "use strict";
  var form = document.getElementById("qform");
  var data = document.getElementById("q-logic");
  var logic;
  var NUM = /^[-+]?(\d+\.?\d*|\.\d+)$/;
  var UNSET = "_unanswered";
  var boxes = form ? Array.prototype.slice.call(form.querySelectorAll(".q[data-field]")) : [];

  function skipped(name) {
    var box = form.querySelector('input[name="' + UNSET + '"][value="' + name + '"]');
    return !!(box && box.checked);
  }

  function read(col) {
    var els = form.querySelectorAll('[name="' + col + '"]'), i, el;
    for (i = 0; i < els.length; i++) {
      el = els[i];
      if (el.type === "checkbox") { return el.checked ? "1" : "0"; }
      if (el.type === "radio") { if (el.checked) { return el.value; } continue; }
      if (el.type === "range" && skipped(col)) { return ""; }
      return (el.value || "").trim();
    }
    return "";
  }

  function columns(box) {
    var out = [], els = box.querySelectorAll("[name]"), i;
    for (i = 0; i < els.length; i++) {
      if (els[i].name !== UNSET && out.indexOf(els[i].name) < 0) { out.push(els[i].name); }
    }
    return out;
  }

  function term(t, env) {
    if (Object.prototype.hasOwnProperty.call(t, "lit")) { return String(t.lit); }
    var v = env[t.col];
    if (v === undefined || v === "") { return t.code !== undefined ? "0" : ""; }
    return v;
  }

  function compare(op, a, b) {
    var num = NUM.test(a) && NUM.test(b), x = num ? parseFloat(a) : a, y = num ? parseFloat(b) : b;
    if (op === "=" || op === "<>") { return (x === y) === (op === "="); }
    if (a === "" || b === "") { return false; }
    if (op === "<") { return x < y; }
    if (op === "<=") { return x <= y; }
    if (op === ">") { return x > y; }
    return x >= y;
  }

  function evaluate(node, env) {
    var i;
    if (node.op === "and" || node.op === "or") {
      for (i = 0; i < node.args.length; i++) {
        if (evaluate(node.args[i], env) !== (node.op === "and")) { return node.op === "or"; }
      }
      return node.op === "and";
    }
    return compare(node.op, term(node.left, env), term(node.right, env));
  }

  // The same evaluator, for the tests that replay tests/questionnaire/branching_cases.json.
  window.followupBranching = { evaluate: evaluate };
  if (!form || !data) { return; }
  try { logic = JSON.parse(data.textContent || "{}"); } catch (e) { return; }

  function setShown(box, shown) {
    box.hidden = !shown;
    var els = box.querySelectorAll("input, select, textarea"), i;
    for (i = 0; i < els.length; i++) {
      if (els[i].hasAttribute("data-locked")) { continue; }
      els[i].disabled = !shown;
    }
  }

  function sections() {
    var heads = form.querySelectorAll("h2.section"), i, el, any;
    for (i = 0; i < heads.length; i++) {
      any = false;
      for (el = heads[i].nextElementSibling; el && !el.matches("h2.section, button"); el = el.nextElementSibling) {
        if (el.matches(".q") && !el.hidden) { any = true; break; }
      }
      heads[i].hidden = !any;
    }
  }

  function update() {
    var env = {}, shown = {}, info = [], round, changed, i, b, now, c;
    for (i = 0; i < boxes.length; i++) {
      b = { box: boxes[i], name: boxes[i].getAttribute("data-field"), cols: columns(boxes[i]) };
      for (c = 0; c < b.cols.length; c++) { env[b.cols[c]] = read(b.cols[c]); }
      shown[b.name] = true;
      info.push(b);
    }
    for (round = 0; round <= info.length; round++) {
      changed = false;
      for (i = 0; i < info.length; i++) {
        b = info[i];
        if (!logic[b.name]) { continue; }
        now = evaluate(logic[b.name], env);
        if (now === shown[b.name]) { continue; }
        changed = true;
        shown[b.name] = now;
        for (c = 0; c < b.cols.length; c++) {
          if (now) { env[b.cols[c]] = read(b.cols[c]); } else { delete env[b.cols[c]]; }
        }
      }
      if (!changed) { break; }
    }
    for (i = 0; i < info.length; i++) { setShown(info[i].box, shown[info[i].name]); }
    sections();
  }

  // Without this script a slider is a number box (blank: no answer). Here it becomes a range input with
  // its value shown and a "No answer yet" box (from its <template>), which the server reads as UNSET.
  function slider(range) {
    var name = range.name, wrap = range.parentNode, q = wrap.parentNode;
    var tpl = q.querySelector("template.slider-js"), hint = document.getElementById("range-" + name);
    var blank = (range.value || "").trim() === "", parts, out, box, described;
    if (!tpl) { return; }
    parts = tpl.content.cloneNode(true);
    out = parts.querySelector("output");
    box = parts.querySelector('input[name="' + UNSET + '"]');
    range.type = "range";
    range.removeAttribute("inputmode");
    if (blank) {
      // a range always has a value: start mid-way, and it counts only once the participant moves it
      range.value = String(Math.floor((parseFloat(range.min) + parseFloat(range.max)) / 2));
      if (box) { box.checked = true; }
    }
    if (out) { wrap.appendChild(out); }
    q.insertBefore(parts, tpl);
    q.removeChild(tpl);
    if (hint) {
      hint.parentNode.removeChild(hint);
      described = (range.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
        return id && id !== hint.id;
      });
      if (described.length) { range.setAttribute("aria-describedby", described.join(" ")); }
      else { range.removeAttribute("aria-describedby"); }
    }
    function show() {
      var unset = box && box.checked;
      wrap.classList.toggle("unset", !!unset);
      if (out) { out.textContent = unset ? "\u2013" : range.value; }
    }
    range.addEventListener("input", function () { if (box) { box.checked = false; } show(); });
    if (box) { box.addEventListener("change", show); }
    show();
  }

  Array.prototype.forEach.call(form.querySelectorAll("input[data-slider]"), slider);
  Array.prototype.forEach.call(form.querySelectorAll("[disabled]"), function (el) {
    el.setAttribute("data-locked", "");
  });
  form.classList.add("js-on");
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  update();
  var summary = document.getElementById("errors");
  if (summary) { summary.focus(); }
})();
