/*
 * PeerLearn notifications: the bell in the header and the notification centre's "new" banner
 * (Alpine CSP build: templates name properties, getters and methods only — no expressions).
 * Loaded with `defer` before static/vendor/alpinejs/alpine-csp.min.js; loading it twice is harmless.
 *
 * notificationBell — templates/notifications/bell.html
 *
 *   <div x-data="notificationBell"
 *        data-unread-url="/notifications/unread.json"   GET → {"unread": n, "latest": id}
 *        data-read-url="/notifications/read/"           POST id=… (Accept: JSON) → {"unread": n}
 *        data-open-url="/notifications/0/open/"         the 0 is replaced by a notification's id
 *        data-socket-path="/ws/notifications/"
 *        data-csrf-token="…"
 *        :data-state="state" :data-count="count">
 *     x-show: hasUnread (x-text="badgeText"), toastVisible; x-text: label, announcement,
 *     toastTitle, toastBody (x-show="hasToastBody"); :href="toastHref";
 *     @click: dismissToast, toastMarkRead
 *
 * The socket (tenant_apps/notifications/consumers.py) sends {"type": "ready"} once it listens,
 * {"type": "pong"} to our pings, {"type": "notification", id, event, title, body, url} for each
 * new notification, and {"type": "notifications_read", unread, latest} when another page of the
 * same person marks notifications read. It closes with 4401 for a signed-out visitor.
 *
 * Counting: unread.json answers the count and the newest id it includes; a pushed notification
 * with a newer id adds one. The count is asked again after every reconnection, so whatever was
 * pushed while the socket was down is caught up.
 *
 * Every received notification is also dispatched on window as the DOM event
 * "notification-received" (detail: the frame), which notificationList listens to:
 *
 *   <div x-data="notificationList" @notification-received.window="arrived">
 *     <div x-show="hasNew"><span x-text="newText"></span> …</div>
 *
 * Test hooks: the bell's data-state is connecting | connected | reconnecting | closed, and
 * data-count the unread count it shows.
 */
(function () {
  'use strict';

  if (window.peerlearnNotificationsLoaded) {
    return;
  }
  window.peerlearnNotificationsLoaded = true;

  var PING_EVERY_MS = 25000;
  var SILENCE_LIMIT_MS = 60000; // no frame at all (not even a pong) for this long: the socket is dead
  var BACKOFF_FIRST_MS = 1000;
  var BACKOFF_MAX_MS = 30000;
  var TOAST_MS = 8000;
  var CLOSE_SIGNED_OUT = 4401;
  var BADGE_MAX = 99;

  function openUrlFor(template, id) {
    return template.replace(/\/0\/(open\/)?$/, '/' + encodeURIComponent(id) + '/$1');
  }

  document.addEventListener('alpine:init', function () {
    var Alpine = window.Alpine;

    Alpine.data('notificationBell', function () {
      // Not reactive: the socket, its timers and the bookkeeping of the count.
      var socket = null;
      var attempt = 0;
      var connectedOnce = false;
      var stopped = false;
      var reconnectTimer = null;
      var pingTimer = null;
      var silenceTimer = null;
      var toastTimer = null;
      var askSeq = 0;
      var pushedWhileAsking = null; // ids pushed while unread.json is being asked, else null
      var listeners = [];

      return {
        count: 0,
        latest: 0, // the newest notification id the count includes
        state: 'connecting',
        toast: null,
        announcement: '',
        unreadUrl: '',
        readUrl: '',
        openUrl: '',
        socketPath: '',
        csrfToken: '',

        init: function () {
          var ds = this.$el.dataset || {};
          this.unreadUrl = ds.unreadUrl || '';
          this.readUrl = ds.readUrl || '';
          this.openUrl = ds.openUrl || '';
          this.socketPath = ds.socketPath || '';
          this.csrfToken = ds.csrfToken || '';
          var self = this;
          this.listen(window, 'online', function () {
            self.reconnectNow();
          });
          this.listen(document, 'visibilitychange', function () {
            if (document.visibilityState === 'visible') {
              self.reconnectNow();
            }
          });
          this.refresh();
          this.connect();
        },

        destroy: function () {
          stopped = true;
          listeners.forEach(function (entry) {
            entry[0].removeEventListener(entry[1], entry[2]);
          });
          listeners = [];
          this.stopTimers();
          clearTimeout(toastTimer);
          if (socket) {
            socket.onclose = null;
            socket.close();
            socket = null;
          }
        },

        listen: function (target, name, handler) {
          target.addEventListener(name, handler);
          listeners.push([target, name, handler]);
        },

        /* --- what the template reads --- */
        get hasUnread() {
          return this.count > 0;
        },
        get badgeText() {
          return this.count > BADGE_MAX ? BADGE_MAX + '+' : String(this.count);
        },
        get label() {
          if (this.count === 0) {
            return 'Notifications';
          }
          return 'Notifications, ' + this.count + ' unread';
        },
        get toastVisible() {
          return this.toast !== null;
        },
        get toastTitle() {
          return this.toast ? this.toast.title : '';
        },
        get toastBody() {
          return this.toast ? this.toast.body : '';
        },
        get hasToastBody() {
          return !!(this.toast && this.toast.body);
        },
        get toastHref() {
          return this.toast ? openUrlFor(this.openUrl, this.toast.id) : '#';
        },

        /* --- the count --- */

        /* Ask the server for the count; what is pushed meanwhile is added if the answer missed it. */
        refresh: function () {
          if (!this.unreadUrl || !window.fetch) {
            return;
          }
          var self = this;
          var seq = ++askSeq;
          pushedWhileAsking = [];
          fetch(this.unreadUrl, {
            credentials: 'same-origin',
            headers: { Accept: 'application/json' },
            cache: 'no-store',
          })
            .then(function (response) {
              if (!response.ok) {
                throw new Error('HTTP ' + response.status);
              }
              return response.json();
            })
            .then(function (data) {
              if (seq !== askSeq) return; // a newer question is on its way
              var latest = Number(data.latest) || 0;
              var missed = (pushedWhileAsking || []).filter(function (id) {
                return id > latest;
              });
              pushedWhileAsking = null;
              self.count = (Number(data.unread) || 0) + missed.length;
              self.latest = Math.max(latest, Math.max.apply(null, missed.concat([0])));
            })
            .catch(function () {
              if (seq === askSeq) {
                pushedWhileAsking = null; // keep what the pushes counted
              }
            });
        },

        received: function (frame) {
          var id = Number(frame.id) || 0;
          if (id && id <= this.latest) {
            return; // counted already (a repeated push)
          }
          if (pushedWhileAsking !== null) {
            pushedWhileAsking.push(id);
          }
          this.count += 1;
          this.latest = Math.max(this.latest, id);
          this.showToast(frame);
          window.dispatchEvent(new CustomEvent('notification-received', { detail: frame }));
        },

        /* --- the toast --- */
        showToast: function (frame) {
          var self = this;
          clearTimeout(toastTimer);
          this.toast = { id: frame.id, title: String(frame.title || ''), body: String(frame.body || '') };
          this.announcement = 'New notification: ' + this.toast.title;
          toastTimer = setTimeout(function () {
            self.toast = null;
          }, TOAST_MS);
        },

        dismissToast: function () {
          clearTimeout(toastTimer);
          this.toast = null;
        },

        toastMarkRead: function () {
          var toast = this.toast;
          this.dismissToast();
          if (!toast || !this.readUrl || !window.fetch) {
            return;
          }
          var self = this;
          var body = new URLSearchParams();
          body.append('id', String(toast.id));
          fetch(this.readUrl, {
            method: 'POST',
            credentials: 'same-origin',
            headers: { Accept: 'application/json', 'X-CSRFToken': this.csrfToken },
            body: body,
          })
            .then(function (response) {
              if (!response.ok) {
                throw new Error('HTTP ' + response.status);
              }
              return response.json();
            })
            .then(function (data) {
              self.count = Number(data.unread) || 0;
            })
            .catch(function () {
              /* the count stays; the list page still shows it unread */
            });
        },

        /* --- the socket --- */
        connect: function () {
          if (stopped || !this.socketPath || !window.WebSocket) {
            return;
          }
          clearTimeout(reconnectTimer);
          var self = this;
          var scheme = window.location.protocol === 'https:' ? 'wss://' : 'ws://';
          var current = new WebSocket(scheme + window.location.host + this.socketPath);
          socket = current;
          this.state = connectedOnce ? 'reconnecting' : 'connecting';

          current.onopen = function () {
            self.heard();
            clearInterval(pingTimer);
            pingTimer = setInterval(function () {
              self.send({ type: 'ping' });
            }, PING_EVERY_MS);
          };
          current.onmessage = function (message) {
            if (current !== socket) return;
            self.heard();
            var frame;
            try {
              frame = JSON.parse(message.data);
            } catch (e) {
              return;
            }
            self.onFrame(frame);
          };
          current.onclose = function (event) {
            if (current !== socket) return;
            socket = null;
            self.stopTimers();
            if (stopped || event.code === CLOSE_SIGNED_OUT) {
              self.state = 'closed';
              return;
            }
            self.scheduleReconnect();
          };
        },

        onFrame: function (frame) {
          if (!frame || typeof frame !== 'object') return;
          switch (frame.type) {
            case 'ready':
              attempt = 0;
              this.state = 'connected';
              if (connectedOnce) {
                this.refresh(); // catch up on what was pushed while the socket was down
              }
              connectedOnce = true;
              break;
            case 'notification':
              this.received(frame);
              break;
            case 'notifications_read':
              this.count = Number(frame.unread) || 0;
              this.latest = Math.max(this.latest, Number(frame.latest) || 0);
              break;
            case 'error':
              if (frame.code === 'unauthenticated') {
                stopped = true; // signed out: the server closes the socket; do not come back
              }
              break;
            default:
              break; // "pong", and events this page does not show
          }
        },

        send: function (frame) {
          if (socket && socket.readyState === WebSocket.OPEN) {
            socket.send(JSON.stringify(frame));
          }
        },

        /* Any frame proves the socket alive; a long silence means the network dropped it unnoticed. */
        heard: function () {
          var self = this;
          clearTimeout(silenceTimer);
          silenceTimer = setTimeout(function () {
            self.abandon();
          }, SILENCE_LIMIT_MS);
        },

        abandon: function () {
          var dead = socket;
          socket = null;
          this.stopTimers();
          if (dead) {
            dead.onclose = null;
            dead.onmessage = null;
            try {
              dead.close();
            } catch (e) {
              /* already closed */
            }
          }
          if (!stopped) {
            this.scheduleReconnect();
          }
        },

        scheduleReconnect: function () {
          var self = this;
          var ceiling = Math.min(BACKOFF_FIRST_MS * Math.pow(2, attempt), BACKOFF_MAX_MS);
          var delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2)); // jitter: not all pages at once
          attempt += 1;
          this.state = 'reconnecting';
          clearTimeout(reconnectTimer);
          reconnectTimer = setTimeout(function () {
            self.connect();
          }, delay);
        },

        /* The network came back or the page is looked at again: do not wait out the backoff. */
        reconnectNow: function () {
          if (stopped || socket !== null) {
            return;
          }
          attempt = 0;
          this.connect();
        },

        stopTimers: function () {
          clearInterval(pingTimer);
          clearTimeout(silenceTimer);
          clearTimeout(reconnectTimer);
          pingTimer = silenceTimer = reconnectTimer = null;
        },
      };
    });

    /* The notification centre: a banner when notifications arrive while the list is open. */
    Alpine.data('notificationList', function () {
      return {
        fresh: 0,
        get hasNew() {
          return this.fresh > 0;
        },
        get newText() {
          return this.fresh === 1 ? 'A new notification arrived.' : this.fresh + ' new notifications arrived.';
        },
        arrived: function () {
          this.fresh += 1;
        },
      };
    });
  });
})();
