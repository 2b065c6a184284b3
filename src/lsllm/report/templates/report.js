// lsllm report: filter and sort the error table and the NER sentences. Nothing else runs here;
// the page reads the same without script (everything is rendered into the HTML).
(function () {
  "use strict";

  function words(value) { return (value || "").split(" ").filter(Boolean); }

  function setUp(controls) {
    var target = document.getElementById(controls.dataset.controls);
    if (!target) { return; }
    var isTable = target.tagName === "TABLE";
    var body = isTable ? target.tBodies[0] : target;
    var items = Array.prototype.slice.call(isTable ? body.rows : body.querySelectorAll(".sentence"));
    var filters = Array.prototype.slice.call(controls.querySelectorAll("select[data-filter]"));
    var sorter = controls.querySelector("select[data-sort]");
    var count = controls.querySelector(".count");

    function matches(item) {
      return filters.every(function (select) {
        var want = select.value;
        if (!want) { return true; }
        var key = select.dataset.filter;
        if (key === "type") { return words(item.dataset.types).indexOf(want) >= 0; }
        if (key === "status") { return words(item.dataset.statuses).indexOf(want) >= 0; }
        return item.dataset[key] === want;
      });
    }

    function update() {
      if (sorter) {
        var order = sorter.value;
        items.sort(function (a, b) {
          if (order === "index") { return a.dataset.index - b.dataset.index; }
          var d = parseFloat(a.dataset.confidence) - parseFloat(b.dataset.confidence);
          return (order === "asc" ? d : -d) || a.dataset.index - b.dataset.index;
        });
        items.forEach(function (item) { body.appendChild(item); });
      }
      var shown = 0;
      items.forEach(function (item) {
        var ok = matches(item);
        item.hidden = !ok;
        shown += ok ? 1 : 0;
      });
      if (count) { count.textContent = "showing " + shown + " of " + items.length; }
    }

    filters.concat(sorter ? [sorter] : []).forEach(function (select) { select.addEventListener("change", update); });
    update();
  }

  Array.prototype.forEach.call(document.querySelectorAll(".controls[data-controls]"), setUp);
})();
