/*
 * The admin console's analytics charts (loaded with `defer`, after
 * static/vendor/chartjs/chart.umd.min.js). The page renders the figures with json_script:
 *
 *   <canvas id="analytics-sessions-chart"></canvas>     (and -revenue-, -learners-, -utilisation-)
 *   <script id="analytics-chart-data" type="application/json">
 *     {"currency": "GBP", "exponent": 2,
 *      "sessions": {"labels": ["2025-01-06", …], "booked": [..], "completed": [..],
 *                   "cancelled": [..], "no_show": [..]},
 *      "revenue": {"labels": ["2025-01", …], "net_minor": [..], "commission_minor": [..], …},
 *      "learners": {"labels": [..], "learners": [..]},
 *      "utilisation": {"labels": ["Mentor name", …], "percent": ["41.7", "", …], …}, …}
 *   </script>
 *
 * Weeks arrive as the ISO date of their Monday, months as YYYY-MM; amounts as integers in minor
 * units, scaled here for the axis and tooltips only. Inline scripts are not allowed by the
 * Content-Security-Policy. The same figures are in the tables under each chart and in its CSV.
 */
(function () {
  'use strict';

  var COMPLETED = '#16a34a';
  var CANCELLED = '#94a3b8';
  var NO_SHOW = '#d97706';
  var COMMISSION = '#0f766e';
  var UTILISATION_BARS = 20;

  function brandColour() {
    var value = getComputedStyle(document.documentElement).getPropertyValue('--brand-primary');
    return (value || '').trim() || '#1d4ed8';
  }

  function formatter(currency, exponent) {
    try {
      return new Intl.NumberFormat(undefined, {
        style: 'currency',
        currency: currency,
        minimumFractionDigits: exponent,
        maximumFractionDigits: exponent,
      });
    } catch (e) {
      return {
        format: function (value) {
          return currency + ' ' + value.toFixed(exponent);
        },
      };
    }
  }

  function parts(text) {
    return String(text)
      .split('-')
      .map(function (part) {
        return Number(part);
      });
  }

  // Dates are calendar dates: formatted in UTC so the viewer's own time zone cannot shift them.
  var weekFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', timeZone: 'UTC' });
  var monthFormat = new Intl.DateTimeFormat(undefined, { month: 'short', year: 'numeric', timeZone: 'UTC' });

  function weekLabel(iso) {
    var p = parts(iso);
    return weekFormat.format(new Date(Date.UTC(p[0], p[1] - 1, p[2])));
  }

  function monthLabel(iso) {
    var p = parts(iso);
    return monthFormat.format(new Date(Date.UTC(p[0], p[1] - 1, 1)));
  }

  function canvas(name) {
    return document.getElementById('analytics-' + name + '-chart');
  }

  function baseOptions() {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: true, position: 'bottom' } },
      scales: {
        x: { grid: { display: false } },
        y: { beginAtZero: true, ticks: { precision: 0 } },
      },
    };
  }

  function bar(label, values, colour) {
    return { label: label, data: values, backgroundColor: colour, borderRadius: 3, maxBarThickness: 36 };
  }

  function drawSessions(sessions) {
    var target = canvas('sessions');
    if (!target || !sessions) {
      return;
    }
    var options = baseOptions();
    options.scales.x.stacked = true;
    options.scales.y.stacked = true;
    options.plugins.tooltip = { mode: 'index' };
    new window.Chart(target, {
      type: 'bar',
      data: {
        labels: (sessions.labels || []).map(weekLabel),
        datasets: [
          bar('Booked', sessions.booked || [], brandColour()),
          bar('Completed', sessions.completed || [], COMPLETED),
          bar('Cancelled', sessions.cancelled || [], CANCELLED),
          bar('No-show', sessions.no_show || [], NO_SHOW),
        ],
      },
      options: options,
    });
  }

  function drawRevenue(revenue, currency, exponent) {
    var target = canvas('revenue');
    if (!target || !revenue) {
      return;
    }
    var scale = Math.pow(10, exponent);
    var money = formatter(currency, exponent);
    function major(values) {
      return (values || []).map(function (minor) {
        return minor / scale;
      });
    }
    var options = baseOptions();
    delete options.scales.y.ticks.precision;
    options.scales.y.ticks.callback = function (value) {
      return money.format(value);
    };
    options.plugins.tooltip = {
      mode: 'index',
      callbacks: {
        label: function (context) {
          return context.dataset.label + ': ' + money.format(context.parsed.y);
        },
      },
    };
    new window.Chart(target, {
      type: 'bar',
      data: {
        labels: (revenue.labels || []).map(monthLabel),
        datasets: [
          bar('Net revenue', major(revenue.net_minor), brandColour()),
          {
            type: 'line',
            label: 'Commission',
            data: major(revenue.commission_minor),
            borderColor: COMMISSION,
            backgroundColor: COMMISSION,
            tension: 0,
            pointRadius: 3,
          },
        ],
      },
      options: options,
    });
  }

  function drawLearners(learners) {
    var target = canvas('learners');
    if (!target || !learners) {
      return;
    }
    var colour = brandColour();
    var options = baseOptions();
    options.plugins.legend.display = false;
    new window.Chart(target, {
      type: 'line',
      data: {
        labels: (learners.labels || []).map(weekLabel),
        datasets: [
          {
            label: 'Active learners',
            data: learners.learners || [],
            borderColor: colour,
            backgroundColor: colour,
            tension: 0,
            pointRadius: 3,
          },
        ],
      },
      options: options,
    });
  }

  function drawUtilisation(utilisation) {
    var target = canvas('utilisation');
    if (!target || !utilisation) {
      return;
    }
    var labels = [];
    var values = [];
    (utilisation.labels || []).forEach(function (name, index) {
      var percent = (utilisation.percent || [])[index];
      if (labels.length < UTILISATION_BARS && percent !== '' && percent !== undefined) {
        labels.push(name);
        values.push(Number(percent));
      }
    });
    var options = baseOptions();
    options.indexAxis = 'y';
    options.plugins.legend.display = false;
    options.plugins.tooltip = {
      callbacks: {
        label: function (context) {
          return context.parsed.x + ' %';
        },
      },
    };
    options.scales = {
      x: {
        beginAtZero: true,
        ticks: {
          callback: function (value) {
            return value + ' %';
          },
        },
      },
      y: { grid: { display: false }, ticks: { autoSkip: false } },
    };
    new window.Chart(target, {
      type: 'bar',
      data: { labels: labels, datasets: [bar('Utilisation', values, brandColour())] },
      options: options,
    });
  }

  function start() {
    var source = document.getElementById('analytics-chart-data');
    if (!source || typeof window.Chart === 'undefined') {
      return;
    }
    var data;
    try {
      data = JSON.parse(source.textContent);
    } catch (e) {
      return;
    }
    var exponent = Number(data.exponent) || 0;
    drawSessions(data.sessions);
    drawRevenue(data.revenue, data.currency, exponent);
    drawLearners(data.learners);
    drawUtilisation(data.utilisation);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
