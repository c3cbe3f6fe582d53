/*
 * The member import's progress (templates/admin_console/members_import_detail.html):
 *
 *   <section data-member-import data-status-url="/manage/members/import/7/status/">
 *     <progress data-progress-bar max="100" value="0"></progress>
 *     <p data-progress-text aria-live="polite"></p>
 *   </section>
 *
 * Polls the status URL (JSON: status, total_rows, processed_rows, percent, finished) once a
 * second, more slowly after errors, and reloads the page when the import has finished: the
 * server renders the report.
 */
(function () {
  'use strict';

  function start(root) {
    var url = root.getAttribute('data-status-url');
    var bar = root.querySelector('[data-progress-bar]');
    var text = root.querySelector('[data-progress-text]');
    var delay = 1000;

    function show(progress) {
      bar.value = progress.percent;
      bar.textContent = progress.percent + '%';
      var label = progress.processed_rows + ' of ' + progress.total_rows + ' rows done';
      if (progress.status === 'queued') {
        label = 'Waiting for the import to start…';
      }
      text.textContent = label;
      root.setAttribute('data-status', progress.status);
    }

    function poll() {
      fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
        .then(function (response) {
          if (!response.ok) {
            throw new Error('status ' + response.status);
          }
          return response.json();
        })
        .then(function (progress) {
          delay = 1000;
          show(progress);
          if (progress.finished) {
            window.location.reload();
            return;
          }
          window.setTimeout(poll, delay);
        })
        .catch(function () {
          delay = Math.min(delay * 2, 15000);
          text.textContent = 'Waiting for the server…';
          window.setTimeout(poll, delay);
        });
    }

    window.setTimeout(poll, delay);
  }

  document.addEventListener('DOMContentLoaded', function () {
    var roots = document.querySelectorAll('[data-member-import]');
    for (var i = 0; i < roots.length; i += 1) {
      start(roots[i]);
    }
  });
})();
