// MathJax 3 for the LaTeX on the site: what pymdownx.arithmatex marks in the pages
// (\( \) inline, \[ \] display) and the $ / $$ math of the notebooks' Markdown cells.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown",
  },
};

document$.subscribe(() => {
  MathJax.typesetPromise();
});
