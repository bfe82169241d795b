// Keeps the explorer's home page live: each new block (server-sent event) refreshes the
// sections, at most about twice a second. Without JavaScript the page still reads, just not live.
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  var url = live.getAttribute("data-fragment");
  var pending = false;
  function refresh() {
    pending = false;
    fetch(url, { cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) live.innerHTML = html; })
      .catch(function () {});
  }
  var source = new EventSource("/explorer/live");
  source.addEventListener("block", function () {
    if (pending) return;
    pending = true;
    setTimeout(refresh, 400);
  });
})();
