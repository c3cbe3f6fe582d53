/*
 * Billing pages' scripts (loaded with `defer`, after static/vendor/chartjs/chart.umd.min.js where
 * there is a chart).
 *
 * The earnings chart — a bar per month. The page renders the figures with json_script:
 *
 *   <canvas id="earnings-chart"></canvas>
 *   <script id="earnings-chart-data" type="application/json">
 *     {"labels": ["Jan 2025", …], "values_minor": [125000, …], "currency": "GBP", "exponent": 2}
 *   </script>
 *
 * Amounts arrive as integers in minor units; they are scaled here for the axis and tooltips only.
 *
 * The receipt's print button — <button type="button" data-print>Print</button>. Inline handlers
 * are not allowed by the Content-Security-Policy, so the click is bound here.
 */
(function () {
  'use strict';

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

  function drawEarningsChart() {
    var canvas = document.getElementById('earnings-chart');
    var source = document.getElementById('earnings-chart-data');
    if (!canvas || !source || typeof window.Chart === 'undefined') {
      return;
    }
    var data;
    try {
      data = JSON.parse(source.textContent);
    } catch (e) {
      return;
    }
    var exponent = Number(data.exponent) || 0;
    var scale = Math.pow(10, exponent);
    var money = formatter(data.currency, exponent);
    var values = (data.values_minor || []).map(function (minor) {
      return minor / scale;
    });
    var colour = brandColour();

    new window.Chart(canvas, {
      type: 'bar',
      data: {
        labels: data.labels || [],
        datasets: [
          {
            label: 'Earnings (' + data.currency + ')',
            data: values,
            backgroundColor: colour,
            borderRadius: 4,
            maxBarThickness: 36,
          },
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (context) {
                return money.format(context.parsed.y);
              },
            },
          },
        },
        scales: {
          x: { grid: { display: false } },
          y: {
            beginAtZero: true,
            ticks: {
              precision: 0,
              callback: function (value) {
                return money.format(value);
              },
            },
          },
        },
      },
    });
  }

  function bindPrintButtons() {
    var buttons = document.querySelectorAll('[data-print]');
    Array.prototype.forEach.call(buttons, function (button) {
      button.hidden = false;
      button.addEventListener('click', function () {
        window.print();
      });
    });
  }

  function start() {
    drawEarningsChart();
    bindPrintButtons();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
