// Make every htmx refusal visible. The htmx-config meta in base.html lets htmx swap 4xx answers:
// an HTML fragment (a form with its errors, a row with its message) goes to the element's target
// as usual, while a bare message (403, 404, 409 refusals, an expired form) and any failure htmx
// does not swap are shown in the page's alert area instead of replacing the target.
(function () {
  "use strict";

  function alertBox() {
    return document.getElementById("htmx-alert");
  }

  function showAlert(message) {
    var box = alertBox();
    if (!box) return;
    box.querySelector("[data-message]").textContent = message;
    box.hidden = false;
  }

  function hideAlert() {
    var box = alertBox();
    if (box) box.hidden = true;
  }

  function isFragment(text) {
    return /^\s*</.test(text || "");
  }

  // A switch (a feature's On/Off) moves as soon as it is clicked, before the server answers.
  // When the answer is not drawn (a bare refusal, a failure, no connection) the switches of the
  // form that asked go back to where the server last drew them: the page never shows a feature
  // switched that the portal did not switch. (A drawn answer redraws them anyway.)
  function requester(event) {
    var config = event.detail.requestConfig;
    return (config && config.elt) || event.detail.elt;
  }

  function restoreSwitches(elt) {
    var form = elt && elt.closest ? elt.closest("form") : null;
    if (!form) return;
    form.querySelectorAll("input[role=switch]").forEach(function (toggle) {
      toggle.checked = toggle.defaultChecked;
    });
  }

  document.addEventListener("htmx:beforeRequest", hideAlert);

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status >= 400 && xhr.status < 500 && !isFragment(xhr.responseText)) {
      event.detail.shouldSwap = false;
      restoreSwitches(requester(event));
      showAlert(xhr.responseText || "That did not work. Reload the page and try again.");
    }
  });

  document.addEventListener("htmx:responseError", function (event) {
    var text = event.detail.xhr.responseText;
    restoreSwitches(requester(event));
    showAlert(text && !isFragment(text) ? text : "Something went wrong on our side. Please try again.");
  });

  document.addEventListener("htmx:sendError", function (event) {
    restoreSwitches(requester(event));
    showAlert("The portal could not be reached. Check your connection and try again.");
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-dismiss-alert]")) hideAlert();
  });

  // A swap that replaces the element with the focus (a pager's link, a button without an id,
  // which htmx cannot find again) would drop the focus to the top of the document, and a
  // keyboard user would Tab through the whole page again: it goes to the new content instead.
  var swapHadFocus = null;

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var active = document.activeElement;
    swapHadFocus = target && active && active !== document.body && target.contains(active) ? target.id || target : null;
  });

  document.addEventListener("htmx:afterSettle", function () {
    var had = swapHadFocus;
    swapHadFocus = null;
    if (!had || (document.activeElement && document.activeElement !== document.body)) return;
    var landing = typeof had === "string" ? document.getElementById(had) : had;
    if (!landing || !landing.isConnected) return;
    if (!landing.hasAttribute("tabindex")) landing.setAttribute("tabindex", "-1");
    landing.focus();
  });

  // No inline handlers (the Content-Security-Policy allows scripts from /static only):
  // <form data-confirm="Question?"> asks before submitting; <form data-confirm-deactivate=
  // "Question?"> asks when its "action" field says deactivate; <select data-autosubmit> (or a
  // checkbox) submits its form when changed.
  function questionFor(form) {
    if (!form || !form.getAttribute) return null;
    var question = form.getAttribute("data-confirm");
    if (question) return question;
    var action = form.elements && form.elements.namedItem("action");
    // A bulk action asks only when something is ticked; with nothing ticked the server says so.
    if (action && action.value && form.querySelector("input[type=checkbox]:checked")) {
      return form.getAttribute("data-confirm-" + action.value);
    }
    return null;
  }

  document.addEventListener("submit", function (event) {
    // htmx forms ask through htmx:confirm below (htmx has taken the submit already).
    if (event.defaultPrevented || event.target.hasAttribute("hx-post")) return;
    var question = questionFor(event.target);
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail.elt;
    var question = questionFor(elt.tagName === "FORM" ? elt : null);
    if (!question) return;
    event.preventDefault();
    if (window.confirm(question)) event.detail.issueRequest(true);
  });

  // Escape closes an open menu (the Manage dropdown) and puts the focus back on its button.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.dropdown[open]").forEach(function (menu) {
      menu.removeAttribute("open");
      var summary = menu.querySelector("summary");
      if (summary && menu.contains(document.activeElement)) summary.focus();
    });
  });

  // After a page loads, the focus goes to its news, where a keyboard or screen reader user
  // needs it: the first field the server refused (its message is tied to it), else the page's
  // error, else the message confirming what was just done. A page that focuses a field itself
  // (autofocus), a link to a place in the page, and a user already elsewhere keep theirs.
  function focusTheNews() {
    var main = document.getElementById("main");
    if (!main || location.hash || main.querySelector("[autofocus]")) return;
    if (document.activeElement && document.activeElement !== document.body) return;
    var news =
      main.querySelector("[aria-invalid=true]") ||
      main.querySelector(".form-error[role=alert]:not([hidden])") ||
      main.querySelector(".flash");
    if (!news) return;
    if (!news.matches("input, select, textarea, button, a[href]")) news.setAttribute("tabindex", "-1");
    news.focus();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", focusTheNews);
  } else {
    focusTheNews();
  }

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.matches && field.matches("select[data-autosubmit], input[data-autosubmit]") && field.form) {
      field.form.requestSubmit ? field.form.requestSubmit() : field.form.submit();
    }
  });
})();
