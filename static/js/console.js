/*
 * The platform console's growth charts (loaded with `defer`, after
 * static/vendor/chartjs/chart.umd.min.js). The page renders the figures with json_script:
 *
 *   <canvas id="console-mrr-chart"></canvas>
 *   <canvas id="console-movement-chart"></canvas>
 *   <script id="console-chart-data" type="application/json">
 *     {"labels": ["Jan 2025", …],
 *      "mrr": [{"currency": "USD", "exponent": 2, "values_minor": [1990000, …]}],
 *      "new": [3, …], "churned": [1, …]}
 *   </script>
 *
 * MRR arrives as integers in minor units, one series per currency; it is scaled here for the
 * axis and tooltips only. Inline scripts are not allowed by the Content-Security-Policy.
 */
(function () {
  'use strict';

  var PALETTE = ['#4f46e5', '#0d9488', '#d97706', '#be123c', '#475569'];
  var NEW_COLOUR = '#16a34a';
  var CHURNED_COLOUR = '#dc2626';

  function brandColour() {
    var value = getComputedStyle(document.documentElement).getPropertyValue('--brand-primary');
    return (value || '').trim() || PALETTE[0];
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

  function readData() {
    var source = document.getElementById('console-chart-data');
    if (!source) {
      return null;
    }
    try {
      return JSON.parse(source.textContent);
    } catch (e) {
      return null;
    }
  }

  function drawMrr(data) {
    var canvas = document.getElementById('console-mrr-chart');
    if (!canvas) {
      return;
    }
    var series = data.mrr || [];
    var formatters = {};
    var datasets = series.map(function (item, index) {
      var exponent = Number(item.exponent) || 0;
      var scale = Math.pow(10, exponent);
      var colour = index === 0 ? brandColour() : PALETTE[index % PALETTE.length];
      formatters[item.currency] = formatter(item.currency, exponent);
      return {
        label: 'MRR (' + item.currency + ')',
        currency: item.currency,
        data: (item.values_minor || []).map(function (minor) {
          return minor / scale;
        }),
        borderColor: colour,
        backgroundColor: colour,
        tension: 0,
        pointRadius: 3,
      };
    });
    var single = series.length === 1 ? formatters[series[0].currency] : null;

    new window.Chart(canvas, {
      type: 'line',
      data: { labels: data.labels || [], datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: series.length > 1 },
          tooltip: {
            callbacks: {
              label: function (context) {
                var money = formatters[context.dataset.currency];
                return money ? money.format(context.parsed.y) : String(context.parsed.y);
              },
            },
          },
        },
        scales: {
          x: { grid: { display: false } },
          y: {
            beginAtZero: true,
            ticks: {
              callback: function (value) {
                return single ? single.format(value) : value;
              },
            },
          },
        },
      },
    });
  }

  function drawMovement(data) {
    var canvas = document.getElementById('console-movement-chart');
    if (!canvas) {
      return;
    }
    new window.Chart(canvas, {
      type: 'bar',
      data: {
        labels: data.labels || [],
        datasets: [
          {
            label: 'New institutions',
            data: data.new || [],
            backgroundColor: NEW_COLOUR,
            borderRadius: 4,
            maxBarThickness: 28,
          },
          {
            label: 'Cancelled',
            data: data.churned || [],
            backgroundColor: CHURNED_COLOUR,
            borderRadius: 4,
            maxBarThickness: 28,
          },
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: true, position: 'bottom' } },
        scales: {
          x: { grid: { display: false } },
          y: { beginAtZero: true, ticks: { precision: 0 } },
        },
      },
    });
  }

  function start() {
    if (typeof window.Chart === 'undefined') {
      return;
    }
    var data = readData();
    if (!data) {
      return;
    }
    drawMrr(data);
    drawMovement(data);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
