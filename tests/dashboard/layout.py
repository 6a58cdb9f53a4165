"""What an operator sees, measured in the browser: the boxes of every visible text on the page
(text nodes, by Range.getClientRects, plus the labels a chart drew on its canvas, which
chart.js records in data-boxes) and whether any two overlap or any is cut off horizontally (by
the viewport or by an ancestor that clips or scrolls). Used by test_browser_layout.py."""

MEASURE_JS = r"""
() => {
  const vw = document.documentElement.clientWidth;
  const clipped = (el) => {
    for (let a = el; a; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.display === "none" || s.visibility === "hidden") return true;
      if (s.clip && s.clip !== "auto") return true; // visually hidden (screen readers only)
    }
    return false;
  };
  const name = (el) => {
    const parts = [];
    for (let a = el; a && a !== document.body && parts.length < 4; a = a.parentElement) {
      parts.unshift(a.tagName.toLowerCase() + (a.dataset.testid ? `[${a.dataset.testid}]` : a.className && typeof a.className === "string" ? "." + a.className.split(" ")[0] : ""));
    }
    return parts.join(">");
  };
  const boxes = [];
  const cut = [];
  let id = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const text = node.textContent.trim();
    const el = node.parentElement;
    if (!text || !el || el.closest("script, style, noscript, option, select, title") || clipped(el)) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const rects = [...range.getClientRects()].filter((r) => r.width > 0.5 && r.height > 0.5);
    id += 1;
    for (const r of rects) {
      let scrolledAway = false;
      for (let a = el.parentElement; a && a !== document.documentElement; a = a.parentElement) {
        if (getComputedStyle(a).overflowY === "visible") continue;
        const ar = a.getBoundingClientRect();
        if (r.bottom <= ar.top + a.clientTop || r.top >= ar.top + a.clientTop + a.clientHeight) scrolledAway = true;
      }
      if (scrolledAway) continue; // scrolled out of a list's view: not on screen
      const box = { id, text: text.slice(0, 50), where: name(el), x: r.left, y: r.top + window.scrollY, w: r.width, h: r.height };
      boxes.push(box);
      if (r.left < -0.5 || r.right > vw + 0.5) cut.push({ ...box, by: "viewport" });
      for (let a = el.parentElement; a && a !== document.documentElement; a = a.parentElement) {
        const ox = getComputedStyle(a).overflowX;
        if (ox === "visible") continue;
        const ar = a.getBoundingClientRect();
        const left = ar.left + a.clientLeft;
        if (r.left < left - 0.5 || r.right > left + a.clientWidth + 0.5) cut.push({ ...box, by: name(a) });
      }
    }
  }
  for (const canvas of document.querySelectorAll("canvas[data-boxes]")) {
    if (clipped(canvas)) continue;
    const cr = canvas.getBoundingClientRect();
    for (const [x, y, w, h] of JSON.parse(canvas.dataset.boxes)) {
      id += 1;
      const box = { id, text: "(chart label)", where: name(canvas), x: cr.left + x, y: cr.top + y + window.scrollY, w, h };
      boxes.push(box);
      if (x < -0.5 || x + w > cr.width + 0.5) cut.push({ ...box, by: "canvas" });
    }
  }
  const overlaps = [];
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      if (a.id === b.id) continue;
      const dx = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
      const dy = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
      if (dx > 1 && dy > 1) overlaps.push([a, b]);
    }
  }
  return { count: boxes.length, overlaps: overlaps.slice(0, 10), cut: cut.slice(0, 10),
           overflow: document.documentElement.scrollWidth - vw };
}
"""


def describe(report: dict) -> str:
    lines = [
        f"{len(report['overlaps'])} overlapping pairs, {len(report['cut'])} cut off, page {report['overflow']}px too wide"
    ]
    for a, b in report["overlaps"]:
        lines.append(f"  overlap: {a['text']!r} ({a['where']}) x {b['text']!r} ({b['where']})")
    for box in report["cut"]:
        lines.append(
            f"  cut off by {box['by']}: {box['text']!r} ({box['where']}) x={box['x']:.0f} w={box['w']:.0f}"
        )
    return "\n".join(lines)


async def measure(page) -> dict:
    return await page.evaluate(MEASURE_JS)
