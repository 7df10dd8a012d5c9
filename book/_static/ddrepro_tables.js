// Tables a reader can sort and filter, served with the site (no network): every
// <table class="ddrepro-sortable"> gets a filter box above it and clickable headers.
(function () {
  "use strict";

  function cellValue(row, index) {
    const cell = row.cells[index];
    const text = cell ? cell.textContent.trim() : "";
    const number = parseFloat(text);
    return { text: text.toLowerCase(), number: isNaN(number) ? null : number };
  }

  function sortBy(table, index, ascending) {
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const x = cellValue(a, index), y = cellValue(b, index);
      let order;
      if (x.number !== null && y.number !== null) order = x.number - y.number;
      else order = x.text.localeCompare(y.text);
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function setup(table) {
    const headers = table.tHead ? Array.from(table.tHead.rows[0].cells) : [];
    headers.forEach(function (header, index) {
      header.style.cursor = "pointer";
      header.title = "sort by this column";
      header.addEventListener("click", function () {
        const ascending = header.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        sortBy(table, index, ascending);
      });
    });
    const box = document.createElement("input");
    box.type = "search";
    box.placeholder = "filter rows (e.g. inconclusive, Privacy, LiRA)";
    box.className = "ddrepro-filter";
    box.style.width = "100%";
    box.style.marginBottom = "0.5em";
    box.addEventListener("input", function () {
      const needle = box.value.trim().toLowerCase();
      Array.from(table.tBodies[0].rows).forEach(function (row) {
        row.style.display = row.textContent.toLowerCase().includes(needle) ? "" : "none";
      });
    });
    table.parentNode.insertBefore(box, table);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.ddrepro-sortable").forEach(setup);
  });
})();
