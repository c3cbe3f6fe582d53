// The console's Theme & branding page (/manage/branding/): re-renders the preview frame with the
// unsaved choices as the admin changes them, and warns when the primary colour fails WCAG AA.
// Loaded before Alpine by the page's {% block alpine_components %}.
(() => {
  const AA = 4.5;
  const PREVIEW_FIELDS = ['theme', 'primary_color', 'accent_color', 'font', 'color_scheme'];

  function luminance(hex) {
    const channels = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
    const linear = channels.map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
  }

  function ratio(a, b) {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  }

  // Same rule as tenants.branding.contrast_color: white or near-black, whichever reads better.
  function textOn(hex) {
    const l = luminance(hex);
    return 1.05 / (l + 0.05) >= (l + 0.05) / 0.0556 ? '#ffffff' : '#111111';
  }

  const isHex = (value) => /^#[0-9a-fA-F]{6}$/.test(value || '');

  document.addEventListener('alpine:init', () => {
    window.Alpine.data('brandingEditor', () => ({
      primary: '#000000',
      timer: null,

      init() {
        this.primary = this.value('primary_color') || this.primary;
      },

      value(name) {
        const form = this.$root;
        if (form.querySelector(`input[type="radio"][name="${name}"]`)) {
          const checked = form.querySelector(`input[type="radio"][name="${name}"]:checked`);
          return checked ? checked.value : '';
        }
        const field = form.querySelector(`[name="${name}"]`);
        return field ? field.value : '';
      },

      // @input / @change on the form.
      changed() {
        const primary = this.value('primary_color');
        if (isHex(primary)) this.primary = primary.toLowerCase();
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.render(), 150);
      },

      render() {
        const params = new URLSearchParams();
        for (const name of PREVIEW_FIELDS) {
          const v = this.value(name);
          if (v) params.set(name, v);
        }
        // Set from here: the CSP build refuses to bind attributes on an <iframe>.
        const frame = this.$root.querySelector('iframe[data-preview-frame]');
        const src = this.$root.dataset.previewUrl + '?' + params.toString();
        if (frame && frame.getAttribute('src') !== src) frame.setAttribute('src', src);
      },

      get textOnPrimaryRatio() {
        return ratio(this.primary, textOn(this.primary)).toFixed(1);
      },

      get primaryOnWhiteRatio() {
        return ratio(this.primary, '#ffffff').toFixed(1);
      },

      get textOnPrimaryFails() {
        return ratio(this.primary, textOn(this.primary)) < AA;
      },

      get primaryOnWhiteFails() {
        return ratio(this.primary, '#ffffff') < AA;
      },
    }));
  });
})();
