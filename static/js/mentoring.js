/*
 * PeerLearn mentoring components (Alpine CSP build: templates name properties, getters and
 * methods only — no expressions). Must run before static/vendor/alpinejs/alpine-csp.min.js
 * starts Alpine: either loaded with `defer` before it in base.html, or without `defer` in a
 * page's head. Loading it twice is harmless.
 *
 * slotPicker — the free times of one mentor, by week, and the booking form they fill.
 *
 *   <section x-data="slotPicker"
 *            data-slots-url="/api/v1/mentors/7/slots/"   GET ?minutes=&from=YYYY-MM-DD&days=7&tz=
 *            data-viewer-timezone="Asia/Kolkata"         empty: the browser's time zone
 *            data-mentor-timezone="Europe/London"
 *            data-minutes="30"                           the length chosen first
 *            data-horizon-days="56">                     how far ahead the mentor takes bookings
 *     <select @change="chooseMinutes">…</select>
 *     <button @click="previousWeek" :disabled="isFirstWeek">  <span x-text="weekLabel">
 *     <button @click="nextWeek" :disabled="isLastWeek">
 *     x-show: isLoading, hasError (x-text="error"), isEmpty, hasPick (x-text="pickSummary")
 *     <template x-for="day in days">  day.key, day.label, day.slots
 *       <template x-for="slot in day.slots">  slot.startsAt, slot.viewerTime, slot.mentorTime,
 *         slot.hasMentorTime, slot.pressed, slot.buttonClass
 *         <button :data-starts-at="slot.startsAt" @click="pick">
 *     <input type="hidden" name="starts_at" :value="startsAt">
 *     <input type="hidden" name="minutes" :value="minutes">
 *     <button type="submit" :disabled="cannotBook">Book this time</button>
 *
 * The API answers {"mentor_timezone", "viewer_timezone", "slots": [{"starts_at", "ends_at",
 * "viewer_start", "mentor_start"}]} with ISO datetimes; viewer_start and mentor_start carry
 * their zone's offset, so the wall-clock times are read straight from those strings.
 */
(function () {
  'use strict';

  if (window.peerlearnMentoringLoaded) {
    return;
  }
  window.peerlearnMentoringLoaded = true;

  var DAYS_PER_WEEK = 7;
  var DAY_MS = 24 * 60 * 60 * 1000;

  /* "YYYY-MM-DD" of today in `zone` (the browser's own when the zone is unknown). */
  function todayIn(zone) {
    try {
      var parts = new Intl.DateTimeFormat('en-CA', {
        timeZone: zone || undefined,
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
      }).formatToParts(new Date());
      var get = function (type) {
        return parts.filter(function (p) { return p.type === type; })[0].value;
      };
      return get('year') + '-' + get('month') + '-' + get('day');
    } catch (e) {
      var now = new Date();
      return toIsoDate(Date.UTC(now.getFullYear(), now.getMonth(), now.getDate()));
    }
  }

  function browserTimezone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    } catch (e) {
      return 'UTC';
    }
  }

  function toIsoDate(ms) {
    return new Date(ms).toISOString().slice(0, 10);
  }

  function dateMs(isoDate) {
    var p = isoDate.split('-');
    return Date.UTC(Number(p[0]), Number(p[1]) - 1, Number(p[2]));
  }

  function addDays(isoDate, days) {
    return toIsoDate(dateMs(isoDate) + days * DAY_MS);
  }

  function dayLabel(isoDate, withYear) {
    var options = { weekday: 'short', day: 'numeric', month: 'short', timeZone: 'UTC' };
    if (withYear) {
      options.year = 'numeric';
    }
    return new Date(dateMs(isoDate)).toLocaleDateString(undefined, options);
  }

  /* "2025-12-03T09:00:00+05:30" → {date: "2025-12-03", time: "09:00"} (the zone's wall clock). */
  function wallClock(iso) {
    var text = String(iso || '');
    return { date: text.slice(0, 10), time: text.slice(11, 16) };
  }

  document.addEventListener('alpine:init', function () {
    window.Alpine.data('slotPicker', function () {
      var requestSeq = 0;

      return {
        url: '',
        viewerTimezone: '',
        mentorTimezone: '',
        minutes: '',
        horizonDays: 56,
        firstDay: '',
        weekStart: '',
        slots: [],
        responseMentorTimezone: '',
        startsAt: '',
        status: 'idle', // 'idle' | 'loading' | 'ready' | 'error'
        error: '',

        init: function () {
          var ds = this.$el.dataset || {};
          this.url = ds.slotsUrl || '';
          this.viewerTimezone = ds.viewerTimezone || browserTimezone();
          this.mentorTimezone = ds.mentorTimezone || '';
          this.minutes = ds.minutes || '';
          this.horizonDays = Number(ds.horizonDays) || 56;
          this.firstDay = todayIn(this.viewerTimezone);
          this.weekStart = this.firstDay;
          var select = this.$el.querySelector('select');
          if (select && select.value) {
            this.minutes = select.value;
          }
          this.load();
        },

        /* --- what the template reads --- */
        get isLoading() {
          return this.status === 'loading';
        },
        get hasError() {
          return this.status === 'error';
        },
        get isEmpty() {
          return this.status === 'ready' && this.slots.length === 0;
        },
        get hasSlots() {
          return this.status === 'ready' && this.slots.length > 0;
        },
        get hasPick() {
          return this.startsAt !== '';
        },
        get cannotBook() {
          return this.startsAt === '' || this.minutes === '';
        },
        get isFirstWeek() {
          return this.weekStart <= this.firstDay;
        },
        get isLastWeek() {
          return addDays(this.weekStart, DAYS_PER_WEEK) > addDays(this.firstDay, this.horizonDays);
        },
        get weekLabel() {
          var last = addDays(this.weekStart, DAYS_PER_WEEK - 1);
          return dayLabel(this.weekStart, false) + ' – ' + dayLabel(last, true);
        },
        get timezoneNote() {
          return 'Times are shown in ' + this.viewerTimezone.replace(/_/g, ' ') + '.';
        },
        get showsMentorTime() {
          var mentorZone = this.responseMentorTimezone || this.mentorTimezone;
          return mentorZone !== '' && mentorZone !== this.viewerTimezone;
        },
        get days() {
          var byDay = [];
          var index = {};
          var withMentor = this.showsMentorTime;
          var picked = this.startsAt;
          this.slots.forEach(function (slot) {
            var viewer = wallClock(slot.viewer_start || slot.starts_at);
            var mentor = wallClock(slot.mentor_start || slot.starts_at);
            var mentorTime = mentor.time + " mentor's time";
            if (mentor.date !== viewer.date) {
              mentorTime = dayLabel(mentor.date, false) + ' ' + mentorTime;
            }
            if (!(viewer.date in index)) {
              index[viewer.date] = byDay.length;
              byDay.push({ key: viewer.date, label: dayLabel(viewer.date, false), slots: [] });
            }
            var selected = slot.starts_at === picked;
            byDay[index[viewer.date]].slots.push({
              startsAt: slot.starts_at,
              viewerTime: viewer.time,
              mentorTime: '(' + mentorTime + ')',
              hasMentorTime: withMentor,
              pressed: selected ? 'true' : 'false',
              buttonClass: selected ? 'btn-primary' : 'btn-secondary',
            });
          });
          return byDay;
        },
        get pickSummary() {
          if (!this.startsAt) {
            return '';
          }
          var self = this;
          var found = this.slots.filter(function (slot) { return slot.starts_at === self.startsAt; })[0];
          if (!found) {
            return '';
          }
          var viewer = wallClock(found.viewer_start || found.starts_at);
          return 'You picked ' + dayLabel(viewer.date, false) + ' at ' + viewer.time + ' (' + this.minutes + ' minutes).';
        },

        /* --- what the template calls --- */
        chooseMinutes: function (event) {
          this.minutes = event.target.value;
          this.load();
        },
        previousWeek: function () {
          if (!this.isFirstWeek) {
            this.weekStart = addDays(this.weekStart, -DAYS_PER_WEEK);
            this.load();
          }
        },
        nextWeek: function () {
          if (!this.isLastWeek) {
            this.weekStart = addDays(this.weekStart, DAYS_PER_WEEK);
            this.load();
          }
        },
        pick: function (event) {
          var button = event.currentTarget || event.target;
          this.startsAt = (button && button.dataset && button.dataset.startsAt) || '';
        },

        load: function () {
          if (!this.url || !this.minutes) {
            return;
          }
          var self = this;
          var seq = ++requestSeq;
          this.status = 'loading';
          this.error = '';
          this.startsAt = '';
          var query = new URLSearchParams({
            minutes: this.minutes,
            from: this.weekStart,
            days: String(DAYS_PER_WEEK),
            tz: this.viewerTimezone,
          });
          fetch(this.url + '?' + query.toString(), {
            credentials: 'same-origin',
            headers: { Accept: 'application/json' },
          })
            .then(function (response) {
              return response.json().then(
                function (body) { return { response: response, body: body }; },
                function () { return { response: response, body: null }; }
              );
            })
            .then(function (result) {
              if (seq !== requestSeq) {
                return; // a newer request (another week or length) has been made
              }
              var response = result.response;
              var body = result.body || {};
              if (response.status === 401) {
                self.fail('Sign in to see this mentor\'s free times.');
              } else if (!response.ok) {
                self.fail((body.error && body.error.message) || 'The free times could not be loaded. Please try again.');
              } else {
                self.slots = Array.isArray(body.slots) ? body.slots : [];
                self.responseMentorTimezone = body.mentor_timezone || '';
                self.status = 'ready';
              }
            })
            .catch(function () {
              if (seq === requestSeq) {
                self.fail('The free times could not be loaded. Check your connection and try again.');
              }
            });
        },
        fail: function (message) {
          this.slots = [];
          this.error = message;
          this.status = 'error';
        },
      };
    });
  });
})();
