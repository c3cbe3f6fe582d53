/*
 * PeerLearn Alpine components.
 *
 * Loaded with `defer` BEFORE static/vendor/alpinejs/alpine-csp.min.js.
 * We use Alpine's CSP build: templates must not contain JavaScript. In
 * directives, reference only the properties, getters and methods registered
 * below by name, e.g.  x-data="navMenu"  @click="toggle"  x-show="open"
 * :class="statusClass"  x-text="message".
 *
 * Any class names returned from here must be literal strings in this file so
 * Tailwind (which scans static/js/) emits them.
 */
(function () {
  'use strict';

  var DEBOUNCE_MS = 300;

  document.addEventListener('alpine:init', function () {
    var Alpine = window.Alpine;

    /* Mobile navigation menu in the header.
     *   <div x-data="navMenu" @keydown.escape.window="close" @click.outside="close">
     *     <button @click="toggle" :aria-expanded="open">…</button>
     *     <div x-show="open" x-cloak>…</div>
     */
    Alpine.data('navMenu', function () {
      return {
        open: false,
        toggle: function () {
          this.open = !this.open;
        },
        close: function () {
          this.open = false;
        },
      };
    });

    /* Dismissible flash message: x-data="dismissible" x-show="visible", button @click="dismiss". */
    Alpine.data('dismissible', function () {
      return {
        visible: true,
        dismiss: function () {
          this.visible = false;
        },
      };
    });

    /* Live sub-domain availability check on the institution sign-up form.
     *
     * Root element attributes:
     *   data-url="<endpoint>"   GET <endpoint>?subdomain=<value> -> {"available": bool, "message": str}
     *   data-suffix="peerlearn.example"  platform domain shown in the preview
     * Inside: <input x-model="value" @input="check"> (the input may also be any
     * descendant; `check` reads the event target) and
     * <p x-text="message" :class="statusClass" aria-live="polite">.
     * The input's server-rendered value is picked up on init (re-rendered form).
     */
    Alpine.data('subdomainCheck', function () {
      var timer = null;
      var requestSeq = 0;

      return {
        value: '',
        status: 'idle', // 'idle' | 'checking' | 'available' | 'unavailable' | 'error'
        message: '',
        url: '',
        suffix: '',

        init: function () {
          var ds = this.$el.dataset || {};
          this.url = ds.url || '';
          this.suffix = ds.suffix || '';
          var input = this.$el.querySelector('input:not([type="hidden"])');
          var initial = ds.initial || (input && input.value) || '';
          this.value = String(initial).trim().toLowerCase();
          if (input && !ds.initial && input.value !== this.value) {
            input.value = this.value;
          }
          if (this.value) {
            this.schedule(0);
          }
        },

        destroy: function () {
          clearTimeout(timer);
          requestSeq++;
        },

        get isIdle() {
          return this.status === 'idle';
        },
        get isChecking() {
          return this.status === 'checking';
        },
        get isAvailable() {
          return this.status === 'available';
        },
        get isUnavailable() {
          return this.status === 'unavailable';
        },
        get isError() {
          return this.status === 'error';
        },
        get hasMessage() {
          return this.message !== '';
        },
        get preview() {
          return this.value ? this.value + '.' + this.suffix : '';
        },
        get hasPreview() {
          return this.value !== '';
        },
        get statusClass() {
          switch (this.status) {
            case 'available':
              return 'text-green-700';
            case 'unavailable':
            case 'error':
              return 'text-red-700';
            default:
              return 'text-gray-600';
          }
        },

        /* @input handler: lower-cases what was typed, then debounces the lookup. */
        check: function (event) {
          var target = event && event.target;
          var raw = target && typeof target.value === 'string' ? target.value : this.value;
          var lowered = String(raw).toLowerCase();
          if (target && typeof target.value === 'string' && target.value !== lowered) {
            var start = target.selectionStart;
            var end = target.selectionEnd;
            target.value = lowered;
            try {
              target.setSelectionRange(start, end);
            } catch (e) {
              /* some input types do not support selection */
            }
          }
          this.value = lowered.trim();
          this.schedule(DEBOUNCE_MS);
        },

        schedule: function (delay) {
          clearTimeout(timer);
          requestSeq++; // invalidates any request still in flight
          if (!this.value) {
            this.status = 'idle';
            this.message = '';
            return;
          }
          var self = this;
          timer = setTimeout(function () {
            self.lookup();
          }, delay);
        },

        lookup: function () {
          var value = this.value;
          if (!value || !this.url) {
            return;
          }
          var seq = ++requestSeq;
          var self = this;
          this.status = 'checking';
          this.message = 'Checking…';
          var sep = this.url.indexOf('?') === -1 ? '?' : '&';
          fetch(this.url + sep + 'subdomain=' + encodeURIComponent(value), {
            method: 'GET',
            credentials: 'same-origin',
            headers: { Accept: 'application/json' },
          })
            .then(function (response) {
              if (!response.ok && response.status !== 400) {
                throw new Error('HTTP ' + response.status);
              }
              return response.json();
            })
            .then(function (data) {
              if (seq !== requestSeq) return; // out of date
              var available = !!(data && data.available === true);
              self.status = available ? 'available' : 'unavailable';
              self.message =
                (data && data.message) || (available ? 'This address is available.' : 'This address is not available.');
            })
            .catch(function () {
              if (seq !== requestSeq) return;
              self.status = 'error';
              self.message = 'Could not check availability right now. You can still submit the form.';
            });
        },
      };
    });

    /* Avatar preview for a file input.
     *   <div x-data="avatarPreview" data-current="{{ user.avatar_url }}" @change="pick">
     *     <img x-show="hasImage" :src="url" alt="">
     *     <input type="file" accept="image/*">
     * `change` bubbles, so @change="pick" may sit on the input or on any ancestor.
     */
    Alpine.data('avatarPreview', function () {
      var objectUrl = null;

      function revoke() {
        if (objectUrl) {
          URL.revokeObjectURL(objectUrl);
          objectUrl = null;
        }
      }

      return {
        url: '',
        current: '',

        init: function () {
          this.current = (this.$el.dataset && this.$el.dataset.current) || '';
          this.url = this.current;
        },

        destroy: function () {
          revoke();
        },

        get hasImage() {
          return this.url !== '';
        },
        get noImage() {
          return this.url === '';
        },

        pick: function (event) {
          var target = event && event.target;
          if (!target || target.type !== 'file') return;
          var file = target.files && target.files[0];
          revoke();
          if (file && /^image\//.test(file.type)) {
            objectUrl = URL.createObjectURL(file);
            this.url = objectUrl;
          } else {
            this.url = this.current;
          }
        },
      };
    });
  });

  /* Replace <i data-feather="name"></i> placeholders with SVG icons.
   * Deferred scripts (this file, Alpine, feather) have all run by now. */
  document.addEventListener('DOMContentLoaded', function () {
    if (window.feather && typeof window.feather.replace === 'function') {
      window.feather.replace({ 'aria-hidden': 'true' });
    }
  });
})();

// A page that only forwards a form (e.g. to a payment provider's hosted checkout) sends it at once;
// the visible button is there for browsers without JavaScript.
document.querySelectorAll("form[data-autosubmit]").forEach((form) => form.submit());
