// Links from the plugin's pages to Airflow's own pages (a DAG run, say). The Airflow UI shows the
// plugin in a sandboxed iframe that may not navigate the window around it (`target=_top` does
// nothing there), but it is the UI's own origin: such a link moves the UI's router to the page,
// as a click in its navigation would. Outside the UI the link opens as any link does.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-airflow-page]");
  if (!link || window.top === window) return;
  try {
    const history = window.top.history;
    const index = (history.state && typeof history.state.idx === "number" ? history.state.idx : 0) + 1;
    history.pushState({ usr: null, key: Math.random().toString(36).slice(2, 10), idx: index }, "", link.href);
    window.top.dispatchEvent(new PopStateEvent("popstate", { state: history.state }));
    event.preventDefault();
  } catch (refused) {
    // another origin around the page: the link opens in the frame
  }
});
