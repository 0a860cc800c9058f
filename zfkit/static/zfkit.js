/* zfkit's in-page pieces: the output-size calculator, clickable layer tables and the feature-map
 * explorer. Plain JavaScript, no framework, nothing fetched: every number a piece shows arrives
 * as JSON inside the piece (written by zfkit/web.py from zfkit.shapes and the models), except the
 * calculator's arithmetic, which is convOutputSize below (tested against conv_output_size).
 *
 * Each piece inlines this file. The first copy on a page defines window.zfkit; every copy then
 * calls boot(), which starts each piece not started yet (showing it and removing its "needs
 * JavaScript" note), so nothing runs twice.
 */
(function () {
  "use strict";
  if (window.zfkit && window.zfkit.boot) { window.zfkit.boot(); return; }
  var SVG = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------ the formula, as Python says it

  // How Python's repr() writes a value, so that messages match conv_output_size's word for word.
  function pyRepr(v) {
    if (v === true) return "True";
    if (v === false) return "False";
    if (v === null || v === undefined) return "None";
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "number") {
      if (Number.isNaN(v)) return "nan";
      if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
      return String(v).replace(/e([+-])(\d)$/, "e$10$2");  // Python writes 1e-07, JS 1e-7
    }
    if (typeof v === "string") {
      var q = v.indexOf("'") >= 0 && v.indexOf('"') < 0 ? '"' : "'";
      var body = v.replace(/\\/g, "\\\\");
      return q + (q === "'" ? body.replace(/'/g, "\\'") : body) + q;
    }
    return String(v);
  }

  function checkInt(name, v, minimum) {
    var n;
    if (typeof v === "bigint") n = v;
    else if (typeof v === "number" && Number.isInteger(v)) n = BigInt(v);
    else throw new Error(name + " must be an integer, got " + pyRepr(v));
    if (n < BigInt(minimum)) throw new Error(name + " must be >= " + minimum + ", got " + n);
    return n;
  }

  // Every quantity of the formula, in BigInt (integer arithmetic: no float division anywhere).
  function formulaParts(size, kernel, stride, padding, dilation, ceilMode) {
    var n = checkInt("size", size, 0), k = checkInt("kernel_size", kernel, 1);
    var s = checkInt("stride", stride, 1), p = checkInt("padding", padding, 0);
    var d = checkInt("dilation", dilation, 1);
    if (typeof ceilMode !== "boolean")
      throw new Error("ceil_mode must be True or False, got " + pyRepr(ceilMode));
    var span = d * (k - 1n) + 1n, padded = n + 2n * p;
    var num = padded - span;                   // negative when the window is wider than the input
    var floorOut = floorDiv(num, s) + 1n, ceilOut = floorDiv(num + s - 1n, s) + 1n;
    // PyTorch's ceil-mode rule: a last window that would start in the right padding is dropped
    var ruleDrops = (ceilOut - 1n) * s >= n + p, ceilAnswer = ruleDrops ? ceilOut - 1n : ceilOut;
    var out = ceilMode ? ceilAnswer : floorOut;
    if (out < 1n)                              // only when the window is wider than the input
      throw new Error("kernel_size " + k + " (dilation " + d + ", so " + span + " pixels) is " +
                      "larger than the padded input (" + n + " + 2*" + p + " = " + padded + ")");
    return {n: n, k: k, s: s, p: p, d: d, ceil: ceilMode, span: span, padded: padded, num: num,
            floorOut: floorOut, ceilOut: ceilOut, ceilAnswer: ceilAnswer, ruleDrops: ruleDrops,
            out: out};
  }

  // Python's a // b for BigInt, b > 0 (BigInt's / truncates toward zero).
  function floorDiv(a, b) {
    var q = a / b;
    return a % b !== 0n && a < 0n ? q - 1n : q;
  }

  function big(x) { return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x; }

  // conv_output_size(size, kernel_size, stride, padding, dilation, ceil_mode), in the browser.
  // Returns a number (a BigInt past 2^53); throws an Error with Python's ValueError message.
  function convOutputSize(size, kernel, stride, padding, dilation, ceilMode) {
    return big(formulaParts(size, kernel, arguments.length > 2 ? stride : 1,
                            arguments.length > 3 ? padding : 0,
                            arguments.length > 4 ? dilation : 1,
                            arguments.length > 5 ? ceilMode : false).out);
  }

  // Where the windows sit (zfkit.calculator.window_positions): the i-th starts at
  // first + i*stride; `dropped` is the start of the next window when it is not computed although
  // pixels after the last one go unread and it would start inside the padded input.
  function windowPositions(size, kernel, stride, padding, dilation, ceilMode) {
    var f = formulaParts(size, kernel, stride, padding, dilation, ceilMode);
    var first = -f.p, next = first + f.out * f.s, end = f.n + f.p;
    var lastStart = first + (f.out - 1n) * f.s;
    var dropped = lastStart + f.span < end && next < end ? big(next) : null;
    return {out: big(f.out), span: big(f.span), first: big(first), stride: big(f.s),
            dropped: dropped, parts: f};
  }

  // The formula with the reader's numbers, e.g. "⌊(8 + 2·0 − 1·(3−1) − 1) / 2⌋ + 1 = ...".
  function explainText(f) {
    var lo = f.ceil ? "⌈" : "⌊", hi = f.ceil ? "⌉" : "⌋";
    var q = f.ceil ? f.ceilOut - 1n : f.floorOut - 1n;
    var text = lo + "(" + f.n + " + 2·" + f.p + " − " + f.d + "·(" + f.k + "−1) − 1) / " + f.s +
      hi + " + 1 = " + lo + f.num + " / " + f.s + hi + " + 1 = " + q + " + 1 = " + (q + 1n);
    if (f.ceil && f.ruleDrops)        // as zfkit.calculator.explain words it
      text += ", minus the window that would start in the right padding = " + f.out;
    return text;
  }

  function ruleText(f) {
    if (f.span > f.padded)            // ceil mode only: floor mode refuses such settings
      return "The window (" + f.span + " pixels) is wider than the padded input (" + f.padded +
        "), which floor mode refuses; ceil mode still keeps one window, starting at the left " +
        "edge and hanging over the right one, as PyTorch's pooling does. Max-pool reads only " +
        "the pixels there.";
    var rem = f.num % f.s;
    var split = f.num + " = " + f.s + "·" + (f.num / f.s) + " + " + rem;
    if (!f.ceil) {
      if (rem === 0n) return "The division comes out even: every window fits exactly.";
      return "Floor mode: " + split + ", so the remainder of " + rem + " pixel" +
        (rem === 1n ? "" : "s") + " is too short for another window, which is dropped" +
        " (ceil mode would give " + f.ceilAnswer + ").";
    }
    if (f.ruleDrops)
      return "PyTorch's ceil-mode rule: the last window must start inside the input or the " +
        "left padding. Window " + (f.ceilOut - 1n) + " would start at pixel " + (f.ceilOut - 1n) +
        "·" + f.s + " − " + f.p + " = " + ((f.ceilOut - 1n) * f.s - f.p) + " ≥ " + f.n +
        ", in the right padding, so it is dropped: " + f.out + (f.out === f.floorOut ?
        ", as in floor mode." : " (floor mode gives " + f.floorOut + ").");
    if (rem === 0n) return "Ceil mode changes nothing here: " + f.num + " / " + f.s +
      " comes out even, so floor and ceil agree.";
    return "Ceil mode: " + split + " leaves a remainder, so one more window is kept (floor mode " +
      "gives " + f.floorOut + "). It hangs over the edge; max-pool reads only the pixels there.";
  }

  // ------------------------------------------------------------ small DOM helpers

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(SVG, name);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function role(root, name) { return root.querySelector('[data-role="' + name + '"]'); }
  function readValue(input) {       // what the reader typed, as Python would receive it
    var t = input.value.trim();
    if (/^[+-]?\d+$/.test(t)) return BigInt(t);
    if (t !== "" && Number.isFinite(Number(t))) return Number(t);
    return t;
  }

  // ------------------------------------------------------------ the calculator (chapter 1)

  function drawStrip(svg, w, colors, width) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var n = Number(w.parts.n), p = Number(w.parts.p), d = Number(w.parts.d);
    var k = Number(w.parts.k), span = w.span, out = w.out, stride = w.stride;
    var lo = -p, hi = n + p, lastStart = w.first + (out - 1) * stride;
    var right = Math.max(hi, lastStart + span, w.dropped === null ? hi : w.dropped + span);
    var label = 92, u = Math.min(28, (width - label - 12) / (right - lo));
    var cells = right - lo <= 80 && u >= 5, x = function (i) { return 6 + (i - lo) * u; };
    width = Math.ceil(x(right) + label);
    var rows = [];
    for (var i = 0; i < out; i++) {
      if (out > 7 && i === 3) { rows.push({gap: out - 5}); i = out - 3; continue; }
      rows.push({i: i, start: w.first + i * stride});
    }
    if (w.dropped !== null) rows.push({i: out, start: w.dropped, dropped: true});
    var rowH = 24, top = 30, height = top + 26 + rows.length * rowH + 8;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    el("title", {}, svg, "input of " + n + " pixels with padding " + p + ", " + out +
       " window" + (out === 1 ? "" : "s") + " of span " + span);
    el("text", {x: 6, y: 14, "class": "zfkit-small"}, svg,
       "input: " + n + " pixels" + (p ? ", padding " + p + " on each side" : ""));
    if (cells) {
      for (var c = lo; c < right; c++) {
        var beyond = c >= hi, pad = c < 0 || c >= n;
        el("rect", {x: x(c), y: top, width: u, height: 20, "class": beyond ? "zfkit-beyond" :
                    pad ? "zfkit-pad" : "zfkit-cell"}, svg);
        if (u >= 14 && !beyond)
          el("text", {x: x(c) + u / 2, y: top + 14, "class": "zfkit-tiny", "text-anchor":
                      "middle"}, svg, pad ? "p" : String(c));
      }
    } else {
      if (p) el("rect", {x: x(lo), y: top, width: p * u, height: 20, "class": "zfkit-pad"}, svg);
      el("rect", {x: x(0), y: top, width: n * u, height: 20, "class": "zfkit-cell"}, svg);
      if (p) el("rect", {x: x(n), y: top, width: p * u, height: 20, "class": "zfkit-pad"}, svg);
      if (right > hi)
        el("rect", {x: x(hi), y: top, width: (right - hi) * u, height: 20,
                    "class": "zfkit-beyond"}, svg);
    }
    rows.forEach(function (row, j) {
      var y = top + 30 + j * rowH;
      if (row.gap) {
        el("text", {x: 6, y: y + 14, "class": "zfkit-small"}, svg,
           "⋮  " + row.gap + " more windows, every " + stride + " pixels");
        return;
      }
      // the dropped window's red is a CSS variable, so that dark mode can lighten it
      var color = row.dropped ? "var(--zf-dropped, " + colors.dropped + ")" :
        row.i === out - 1 ? colors.last :
        row.i === 0 ? colors.first : row.i === 1 ? colors.second : colors.other;
      var g = el("g", {"data-window": row.dropped ? "dropped" : String(row.i)}, svg);
      el("rect", {x: x(row.start), y: y + 4, width: span * u, height: 12,
                  style: "fill: " + color + "; stroke: " + color, "fill-opacity":
                  row.dropped ? 0 : 0.25, "stroke-width": 1.5,
                  "stroke-dasharray": row.dropped ? "4 3" : "none"}, g);
      if (cells) {
        for (var t = 0; t < k; t++) {
          var tap = row.start + t * d, outside = tap >= hi;
          el("rect", {x: x(tap) + 2, y: y + 6, width: Math.max(1, u - 4), height: 8,
                      style: "fill: " + (row.dropped || outside ? "none" : color) +
                      "; stroke: " + color}, g);
        }
      }
      var name = row.dropped ? "dropped" : "out[" + row.i + "]";
      el("text", {x: x(right) + 8, y: y + 14, "class": "zfkit-small"}, g,
         name + " @" + row.start);
    });
  }

  function startCalculator(root, data) {
    var names = ["size", "kernel", "stride", "padding", "dilation"];
    var inputs = names.map(function (name) { return role(root, name); });
    var ceil = role(root, "ceil"), svg = role(root, "strip");
    var result = role(root, "result"), formula = role(root, "formula"), rule = role(root, "rule");
    function update() {
      var args = inputs.map(readValue).concat([ceil.checked]);
      var w;
      try { w = windowPositions.apply(null, args); }
      catch (e) {
        root.classList.add("zfkit-is-invalid");
        result.textContent = "invalid settings: " + e.message;
        formula.textContent = ""; rule.textContent = "";    // (CSS hides the picture)
        return;
      }
      root.classList.remove("zfkit-is-invalid");
      result.textContent = "output size " + w.out;
      formula.textContent = explainText(w.parts);
      rule.textContent = ruleText(w.parts);
      if (typeof w.out === "number" && Number.isSafeInteger(w.first) && w.out < 1e9)
        drawStrip(svg, w, data.colors, Math.max(280, Math.min(760, root.clientWidth)));
      else while (svg.firstChild) svg.removeChild(svg.firstChild);   // too large to draw
    }
    inputs.concat([ceil]).forEach(function (input) {
      input.addEventListener("input", update);
      input.addEventListener("change", update);
    });
    window.addEventListener("resize", update);
    update();
  }

  // ------------------------------------------------------------ clickable layer tables (ch. 2, 3)

  function startTable(root, data) {
    var rows = Array.prototype.slice.call(root.querySelectorAll("tr[data-row]"));
    var panel = role(root, "derivation"), box = role(root, "box"), next = role(root, "next");
    function select(index) {
      var row = data.rows[index];
      rows.forEach(function (tr, i) {
        tr.setAttribute("aria-selected", i === index ? "true" : "false");
      });
      panel.textContent = "";
      row.derivation.forEach(function (line, i) {
        var para = document.createElement(i ? "p" : "h4");
        para.textContent = line;
        panel.appendChild(para);
      });
      var b = row.box;
      box.setAttribute("x", b.left); box.setAttribute("y", b.left);
      box.setAttribute("width", b.size); box.setAttribute("height", b.size);
      box.setAttribute("data-layer", row.name);
      next.style.display = b.jump ? "" : "none";
      if (b.jump) {
        next.setAttribute("x", b.left + b.jump); next.setAttribute("y", b.left);
        next.setAttribute("width", b.size); next.setAttribute("height", b.size);
      }
      role(root, "box-label").textContent = row.box_label;
    }
    rows.forEach(function (tr, i) {
      tr.addEventListener("click", function () { select(i); });
      tr.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(i); }
        else if (ev.key === "ArrowDown" && rows[i + 1]) { ev.preventDefault(); rows[i + 1].focus(); }
        else if (ev.key === "ArrowUp" && rows[i - 1]) { ev.preventDefault(); rows[i - 1].focus(); }
      });
    });
    select(data.start);
  }

  // ------------------------------------------------------------ the feature-map explorer (ch. 6)

  function decodeSprite(uri) {      // a grayscale PNG sprite -> its pixel values (one per pixel)
    return new Promise(function (resolve, reject) {
      var img = new Image();
      img.onload = function () {
        var c = document.createElement("canvas");
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        var ctx = c.getContext("2d");
        ctx.drawImage(img, 0, 0);
        var rgba = ctx.getImageData(0, 0, c.width, c.height).data;
        var gray = new Uint8Array(c.width * c.height);
        for (var i = 0; i < gray.length; i++) gray[i] = rgba[4 * i];
        resolve({width: c.width, values: gray});
      };
      img.onerror = function () { reject(new Error("could not decode a feature-map sprite")); };
      img.src = uri;
    });
  }

  function startExplorer(root, data) {
    var pick = {net: role(root, "net"), layer: role(root, "layer"), image: role(root, "image"),
                channel: role(root, "channel")};
    var imageCanvas = role(root, "image-canvas"), mapCanvas = role(root, "map-canvas");
    var bar = role(root, "colorbar"), caption = role(root, "caption");
    var lut = Uint8Array.from(atob(data.cmap), function (ch) { return ch.charCodeAt(0); });
    var sprites = {}, pictures = {}, token = 0;
    var g = bar.getContext("2d");
    for (var i = 0; i < bar.width; i++) {
      var v = Math.round(255 * i / (bar.width - 1));
      g.fillStyle = "rgb(" + lut[3 * v] + "," + lut[3 * v + 1] + "," + lut[3 * v + 2] + ")";
      g.fillRect(i, 0, 1, bar.height);
    }
    function layerData() { return data.nets[pick.net.selectedIndex].layers[pick.layer.selectedIndex]; }
    function fillChannels() {
      var keep = Math.max(0, pick.channel.selectedIndex), layer = layerData();
      pick.channel.textContent = "";
      layer.channels.forEach(function (c, rank) {
        var opt = document.createElement("option");
        opt.value = String(c);
        opt.textContent = c + " (#" + (rank + 1) + ")";
        pick.channel.appendChild(opt);
      });
      pick.channel.selectedIndex = Math.min(keep, layer.channels.length - 1);
    }
    function picture(index) {
      if (!pictures[index]) pictures[index] = new Promise(function (resolve) {
        var img = new Image();
        img.onload = function () { resolve(img); };
        img.src = data.images[index];
      });
      return pictures[index];
    }
    function draw() {
      var netIndex = pick.net.selectedIndex, net = data.nets[netIndex], layer = layerData();
      var imageIndex = pick.image.selectedIndex, rank = pick.channel.selectedIndex;
      var key = net.name + "/" + layer.name + "/" + imageIndex + "/" + layer.channels[rank];
      var mine = ++token, spriteKey = netIndex + "/" + pick.layer.selectedIndex;
      if (!sprites[spriteKey]) sprites[spriteKey] = decodeSprite(layer.sprite);
      Promise.all([sprites[spriteKey], picture(imageIndex)]).then(function (got) {
        if (mine !== token) return;               // a newer selection is being drawn
        var sprite = got[0], h = layer.shape[1], w = layer.shape[2];
        var ictx = imageCanvas.getContext("2d");
        ictx.drawImage(got[1], 0, 0, imageCanvas.width, imageCanvas.height);
        mapCanvas.width = w; mapCanvas.height = h;
        var ctx = mapCanvas.getContext("2d"), pixels = ctx.createImageData(w, h);
        for (var y = 0; y < h; y++) for (var x = 0; x < w; x++) {
          var q = sprite.values[(imageIndex * h + y) * sprite.width + rank * w + x];
          var o = 4 * (y * w + x);
          pixels.data[o] = lut[3 * q]; pixels.data[o + 1] = lut[3 * q + 1];
          pixels.data[o + 2] = lut[3 * q + 2]; pixels.data[o + 3] = 255;
        }
        ctx.putImageData(pixels, 0, 0);
        var peak = layer.peaks[imageIndex][rank];
        role(root, "bar-max").textContent = peak.toPrecision(3);
        caption.textContent = net.name + " " + layer.name + ", channel " + layer.channels[rank] +
          " (strongest #" + (rank + 1) + " of " + layer.shape[0] + " over these images), " + h +
          "x" + w + " map of image " + imageIndex + " (" + data.labels[imageIndex] + "); " +
          (peak > 0 ? "its largest activation is " + peak.toPrecision(3) + " (brightest colour)"
                    : "the map is zero everywhere (the ReLU cut it off)") + ".";
        mapCanvas.style.borderColor = net.color;
        root.setAttribute("data-drawn", key);
      }).catch(function (e) { caption.textContent = e.message; });
    }
    pick.net.addEventListener("change", function () { fillChannels(); draw(); });
    pick.layer.addEventListener("change", function () { fillChannels(); draw(); });
    pick.image.addEventListener("change", draw);
    pick.channel.addEventListener("change", draw);
    fillChannels();
    draw();
  }

  // ------------------------------------------------------------ start every piece once

  var starters = {calculator: startCalculator, table: startTable, explorer: startExplorer};

  function boot() {
    var pieces = document.querySelectorAll("[data-zfkit]:not([data-zfkit-started])");
    Array.prototype.forEach.call(pieces, function (root) {
      root.setAttribute("data-zfkit-started", "");
      var data = JSON.parse(root.querySelector("script.zfkit-data").textContent);
      var note = root.previousElementSibling;       // "needs JavaScript": not true any more
      if (note && note.classList.contains("zfkit-noscript")) note.remove();
      root.hidden = false;
      starters[root.getAttribute("data-zfkit")](root, data);
    });
  }

  window.zfkit = {convOutputSize: convOutputSize, windowPositions: windowPositions,
                  explainText: explainText, pyRepr: pyRepr, boot: boot};
  boot();
})();
