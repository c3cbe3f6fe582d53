/*
 * PeerLearn live room: video and audio peer to peer (a WebRTC mesh of at most six people), with
 * signalling, chat and presence over the room's WebSocket (the protocol: docs/live-protocol.md).
 * Plain JavaScript, not an Alpine component: the page is one widget that mostly manages media
 * objects and DOM nodes Alpine would not help with.
 *
 * Input: the JSON block #live-room-config (rendered with json_script by the live-room view):
 *   {websocket_path, room, you: {user_id, name, is_mentor}, timezone, back_url, login_url,
 *    ice_servers_url, icons_url, max_participants, opens_minutes_before}
 *
 * Negotiation: whoever joins sends an offer to everyone already in the room; the others answer.
 * If two offers cross anyway, the "perfect negotiation" rule settles it: the newer peer (higher
 * `seq`; the larger peer_id when a seq is unknown) is polite — it rolls back its offer and answers.
 *
 * Test hooks: #live-room[data-state] is connecting | connected | reconnecting | closed; every
 * remote tile carries data-peer-id, data-connection-state (its RTCPeerConnection's
 * connectionState) and data-video-playing="true" once its video shows frames.
 */
(function () {
  'use strict';

  const root = document.getElementById('live-room');
  const configBlock = document.getElementById('live-room-config');
  if (!root || !configBlock) {
    return;
  }
  const config = JSON.parse(configBlock.textContent);

  const PING_EVERY_MS = 20000;
  const SILENCE_LIMIT_MS = 50000; // no frame at all (not even a pong) for this long: the socket is dead
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 15000;
  const ICE_RESTART_GAP_MS = 10000;
  const CHAT_MAX_CHARS = 2000;
  const CLOSE_FLOODING = 4429;
  const CLOSE_UNAVAILABLE = 4503; // Redis (chat, signalling, presence) is down: retry with backoff
  const FLOODING_PAUSE_MS = 10000;
  const UNREACHABLE_AFTER_FAILURES = 4; // handshakes refused in a row (1006 before open)
  const MAX_TIMER_MS = 2147483647;
  const BROKEN = new Set(['disconnected', 'failed', 'closed']);
  const SILENT_ERRORS_ABOUT = new Set(['offer', 'answer', 'ice', 'state', 'ping', 'leave']);

  // Close codes the server uses to say "do not come back by yourself" (docs/live-protocol.md).
  const CLOSE_REASONS = {
    4401: 'You are signed out. Sign in again to rejoin the room.',
    4403: 'You cannot join this room right now (it holds at most ' + config.max_participants + ' people).',
    4404: 'There is no such session for you.',
    4410: 'This session has ended and its room is closed.',
    4425: 'The room is not open yet: it opens ' + config.opens_minutes_before + ' minutes before the session starts.',
  };

  // Class strings are written out whole so that Tailwind finds them.
  const BANNER_CLASSES = {
    connecting: 'alert alert-info mb-0',
    connected: 'alert alert-success mb-0',
    reconnecting: 'alert alert-warning mb-0',
    closed: 'alert alert-error mb-0',
  };
  const CONNECTION_LABELS = {
    waiting: ['Waiting for their call…', 'badge badge-gray'],
    new: ['Starting…', 'badge badge-gray'],
    connecting: ['Connecting…', 'badge badge-yellow'],
    connected: ['Connected', 'badge badge-green'],
    disconnected: ['Connection interrupted…', 'badge badge-yellow'],
    failed: ['Connection failed', 'badge badge-red'],
    closed: ['Closed', 'badge badge-gray'],
  };
  const CONTROL_BASE =
    'inline-flex size-14 cursor-pointer items-center justify-center rounded-full disabled:cursor-not-allowed disabled:opacity-50';
  const CONTROL_ON = 'bg-gray-100 text-gray-900 hover:bg-gray-200';
  const CONTROL_OFF = 'bg-red-600 text-white hover:bg-red-700';
  const CONTROL_ACTIVE = 'bg-brand text-on-brand hover:brightness-110';
  const TILE_CLASS = 'relative aspect-video overflow-hidden rounded-lg bg-gray-900';
  const LOCAL_MIRROR_CLASS = '-scale-x-100';

  const $ = (id) => document.getElementById(id);
  const els = {
    banner: $('live-banner'),
    bannerText: $('live-banner-text'),
    bannerAction: $('live-banner-action'),
    mediaNote: $('live-media-note'),
    grid: $('live-grid'),
    localTile: $('live-local-tile'),
    localVideo: $('live-local-video'),
    mic: $('live-mic'),
    camera: $('live-camera'),
    screen: $('live-screen'),
    leave: $('live-leave'),
    end: $('live-end'),
    peoplePanel: $('live-people-panel'),
    people: $('live-people'),
    peopleCount: $('live-people-count'),
    chatPanel: $('live-chat-panel'),
    chatMessages: $('live-chat-messages'),
    chatUnread: $('live-chat-unread'),
    chatError: $('live-chat-error'),
    chatForm: $('live-chat-form'),
    chatInput: $('live-chat-input'),
    chatSend: $('live-chat-form').querySelector('button[type="submit"]'),
  };

  const state = {
    socket: null,
    peerId: null,
    seq: null,
    room: config.room,
    you: config.you,
    iceServers: [],
    peers: new Map(), // peer_id → peer (see addPeer)
    epoch: 0, // bumped on every `joined`: signalling work of an older socket is dropped
    queue: Promise.resolve(), // signalling is handled one message at a time, in order
    media: null, // the promise of the local media (asked once, kept across reconnects)
    localStream: null,
    audioTrack: null,
    cameraTrack: null,
    screenTrack: null,
    audioOn: false,
    videoOn: false,
    reconnectAttempt: 0,
    opened: false, // whether the current socket got past the handshake
    failedHandshakes: 0,
    reconnectTimer: null,
    countdownTimer: null,
    pingTimer: null,
    lastHeard: 0,
    lastError: null,
    finished: false, // left, ended or refused: do not reconnect by ourselves
    chatIds: new Set(),
    unread: 0,
  };

  // --- Small helpers --------------------------------------------------------------------------

  function icon(name, extraClass) {
    const svgNs = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(svgNs, 'svg');
    svg.setAttribute('class', 'feather ' + (extraClass || 'size-4'));
    svg.setAttribute('fill', 'none');
    svg.setAttribute('stroke', 'currentColor');
    svg.setAttribute('stroke-width', '2');
    svg.setAttribute('stroke-linecap', 'round');
    svg.setAttribute('stroke-linejoin', 'round');
    svg.setAttribute('aria-hidden', 'true');
    const use = document.createElementNS(svgNs, 'use');
    use.setAttribute('href', config.icons_url + '#' + name);
    svg.appendChild(use);
    return svg;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function initial(name) {
    return (String(name || '?').trim()[0] || '?').toUpperCase();
  }

  const timeFormat = (function () {
    try {
      return new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', timeZone: config.timezone });
    } catch (error) {
      return new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
    }
  })();

  function clockTime(iso) {
    const date = new Date(iso);
    return isNaN(date.getTime()) ? '' : timeFormat.format(date);
  }

  function socketOpen() {
    return state.socket !== null && state.socket.readyState === WebSocket.OPEN;
  }

  function send(message) {
    if (!socketOpen()) {
      return false;
    }
    state.socket.send(JSON.stringify(message));
    return true;
  }

  function enqueue(task) {
    const epoch = state.epoch;
    state.queue = state.queue
      .then(() => (epoch === state.epoch ? task() : undefined))
      .catch((error) => console.warn('live room:', error));
  }

  // --- Banner and socket state ----------------------------------------------------------------

  function setBanner(kind, text, action) {
    root.dataset.state = kind;
    els.banner.className = BANNER_CLASSES[kind];
    els.bannerText.textContent = text;
    if (action) {
      els.bannerAction.textContent = action.label;
      els.bannerAction.onclick = action.run;
      els.bannerAction.hidden = false;
    } else {
      els.bannerAction.onclick = null;
      els.bannerAction.hidden = true;
    }
    updateChatForm();
    if (els.end) {
      els.end.disabled = kind !== 'connected';
    }
  }

  function connectedBanner() {
    const others = state.peers.size;
    const text =
      others === 0
        ? 'You are in the room. Waiting for the others to join…'
        : 'You are in the room with ' + others + (others === 1 ? ' other person.' : ' other people.');
    setBanner('connected', text);
  }

  // --- The WebSocket --------------------------------------------------------------------------

  function connect() {
    clearTimeout(state.reconnectTimer);
    clearInterval(state.countdownTimer);
    state.finished = false;
    state.lastError = null;
    if (state.reconnectAttempt === 0) {
      setBanner('connecting', 'Connecting to the room…');
    } else {
      setBanner('reconnecting', 'Reconnecting to the room…');
    }
    const scheme = window.location.protocol === 'https:' ? 'wss://' : 'ws://';
    const socket = new WebSocket(scheme + window.location.host + config.websocket_path);
    state.socket = socket;
    state.opened = false;
    socket.onopen = () => {
      if (socket === state.socket) {
        state.opened = true;
        state.failedHandshakes = 0;
        state.lastHeard = Date.now();
        startPing();
      }
    };
    socket.onmessage = (event) => {
      if (socket === state.socket) {
        state.lastHeard = Date.now();
        receive(event.data);
      }
    };
    socket.onclose = (event) => {
      if (socket === state.socket) {
        socketClosed(event.code);
      }
    };
  }

  function drop(socket) {
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    try {
      socket.close();
    } catch (error) {
      /* already closed */
    }
  }

  function socketClosed(code) {
    stopPing();
    state.socket = null;
    updateChatForm();
    if (state.finished) {
      return;
    }
    if (!state.opened) {
      state.failedHandshakes += 1;
    }
    if (code === CLOSE_FLOODING) {
      scheduleReconnect(FLOODING_PAUSE_MS, 'You sent too many messages, so the room disconnected you.');
    } else if (Object.prototype.hasOwnProperty.call(CLOSE_REASONS, code)) {
      refused(code);
    } else if (code === CLOSE_UNAVAILABLE || (state.lastError && state.lastError.code === 'live_unavailable')) {
      scheduleReconnect(null, 'Live features are unavailable at the moment.');
    } else if (code === 1011 || (state.lastError && state.lastError.code === 'server_error')) {
      scheduleReconnect(null, 'Something went wrong on the server.');
    } else {
      scheduleReconnect(null, 'The connection to the room was lost.'); // 1006, 1001, …
    }
  }

  function refused(code) {
    // 4xxx: final for this attempt (docs/live-protocol.md): explain, and offer what can help.
    state.finished = true;
    teardownPeers();
    const error = state.lastError && state.lastError.close_code === code ? state.lastError : null;
    let message = error && error.message ? error.message : CLOSE_REASONS[code];
    let action = { label: 'Back to the session', run: () => window.location.assign(config.back_url) };
    if (code === 4401) {
      action = { label: 'Sign in', run: () => window.location.assign(config.login_url) };
    } else if (code === 4403 && error && error.code === 'room_full') {
      message += ' Close the room in your other tabs, then rejoin.';
      action = { label: 'Rejoin', run: retryNow };
    } else if (code === 4425) {
      message = roomOpensMessage();
      action = { label: 'Try again', run: retryNow };
      retryWhenOpen();
    } else if (code === 4410) {
      stopLocalMedia();
    }
    setBanner('closed', message, action);
  }

  function roomOpensAt() {
    const startsAt = new Date(state.room.starts_at).getTime();
    return isNaN(startsAt) ? null : startsAt - config.opens_minutes_before * 60 * 1000;
  }

  function roomOpensMessage() {
    const opensAt = roomOpensAt();
    if (opensAt === null) {
      return CLOSE_REASONS[4425];
    }
    return 'The room opens at ' + timeFormat.format(new Date(opensAt)) + ' (' + config.opens_minutes_before +
      ' minutes before the start). This page connects by itself then.';
  }

  function retryWhenOpen() {
    const opensAt = roomOpensAt();
    const wait = opensAt === null ? -1 : opensAt - Date.now() + 2000;
    if (wait > 0 && wait < MAX_TIMER_MS) {
      state.reconnectTimer = setTimeout(retryNow, wait);
    }
  }

  function retryNow() {
    state.reconnectAttempt = 0;
    connect();
  }

  function scheduleReconnect(fixedDelay, why) {
    const delay = fixedDelay || Math.min(BACKOFF_FIRST_MS * Math.pow(2, state.reconnectAttempt), BACKOFF_MAX_MS);
    state.reconnectAttempt += 1;
    const due = Date.now() + delay;
    const unreachable = state.failedHandshakes >= UNREACHABLE_AFTER_FAILURES;
    const show = () => {
      const seconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      if (unreachable) {
        const text = 'Cannot reach the room. Check your connection, or reload the page. Trying again in ';
        setBanner('reconnecting', text + seconds + ' s…', { label: 'Reload', run: () => window.location.reload() });
      } else {
        setBanner('reconnecting', why + ' Reconnecting in ' + seconds + ' s…', {
          label: 'Reconnect now',
          run: connect,
        });
      }
    };
    show();
    clearInterval(state.countdownTimer);
    state.countdownTimer = setInterval(show, 1000);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function startPing() {
    stopPing();
    state.pingTimer = setInterval(() => {
      if (!socketOpen()) {
        return;
      }
      if (Date.now() - state.lastHeard > SILENCE_LIMIT_MS) {
        // The network went away without the socket noticing: give up on it and reconnect.
        const socket = state.socket;
        drop(socket);
        socketClosed(1006);
        return;
      }
      send({ type: 'ping' });
    }, PING_EVERY_MS);
  }

  function stopPing() {
    clearInterval(state.pingTimer);
    state.pingTimer = null;
  }

  // --- Messages from the server ---------------------------------------------------------------

  function receive(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch (error) {
      return;
    }
    if (!message || typeof message.type !== 'string') {
      return;
    }
    switch (message.type) {
      case 'joined':
        joined(message);
        break;
      case 'peer.joined':
        if (message.peer && message.peer.peer_id !== state.peerId) {
          replaceStalePeersOf(message.peer);
          addPeer(message.peer);
          connectedBanner();
        }
        break;
      case 'peer.left':
        removePeer(message.peer_id);
        if (root.dataset.state === 'connected') {
          connectedBanner();
        }
        break;
      case 'peer.state':
        peerState(message);
        break;
      case 'offer':
        enqueue(() => offerReceived(message));
        break;
      case 'answer':
        enqueue(() => answerReceived(message));
        break;
      case 'ice':
        enqueue(() => candidateReceived(message));
        break;
      case 'chat':
        if (message.message) {
          appendChat(message.message, true);
        }
        break;
      case 'session.ended':
        sessionEnded(message.reason);
        break;
      case 'error':
        serverError(message);
        break;
      default:
        break; // pong, and anything newer than this page
    }
  }

  function joined(message) {
    state.epoch += 1;
    state.reconnectAttempt = 0;
    clearInterval(state.countdownTimer);
    teardownPeers(); // after a reconnect everyone has a new peer id: negotiate afresh
    state.peerId = message.peer_id;
    state.seq = typeof message.seq === 'number' ? message.seq : null;
    state.iceServers = Array.isArray(message.ice_servers) ? message.ice_servers : [];
    state.room = message.room || state.room;
    state.you = message.you || state.you;
    root.dataset.peerId = state.peerId;
    renderChatHistory(message.chat || []);
    const others = (message.peers || []).filter((peer) => peer && peer.peer_id !== state.peerId);
    others.forEach((info) => addPeer(info));
    connectedBanner();
    renderPeople();
    enqueue(async () => {
      await ensureLocalMedia();
      sendState();
      // We are the newcomer: we call everyone who was already there.
      for (const info of others) {
        const peer = state.peers.get(info.peer_id);
        if (peer && !peer.pc) {
          await call(peer);
        }
      }
    });
  }

  function peerState(message) {
    const peer = state.peers.get(message.peer_id);
    if (!peer) {
      return;
    }
    ['audio', 'video', 'screen'].forEach((key) => {
      if (typeof message[key] === 'boolean') {
        peer.info[key] = message[key];
      }
    });
    renderTile(peer);
    renderPeople();
  }

  function serverError(message) {
    if (message.close_code) {
      state.lastError = message; // the close that follows is explained by it
      return;
    }
    if (SILENT_ERRORS_ABOUT.has(message.about)) {
      // About the page's own signalling (e.g. a peer that just left): nothing a person can act on.
      console.warn('live room:', message.code, message.message);
      return;
    }
    const text =
      message.code === 'throttled'
        ? 'You are sending messages too fast. Wait a moment, then try again.'
        : message.message || 'The room could not handle that (' + (message.code || 'error') + ').';
    showChatError(text);
  }

  function sessionEnded(reason) {
    state.finished = true;
    teardownPeers();
    stopLocalMedia();
    if (state.socket) {
      drop(state.socket);
      state.socket = null;
    }
    stopPing();
    let text = 'The mentor ended the session for everyone. Thank you for taking part!';
    if (reason === 'time') {
      text = "The session's time is over and its room has closed. Thank you for taking part!";
    } else if (state.you && state.you.is_mentor) {
      text = 'You ended the session for everyone.';
    }
    setBanner('closed', text, {
      label: 'Back to the session',
      run: () => window.location.assign(config.back_url),
    });
  }

  // --- Local media ----------------------------------------------------------------------------

  function noteMedia(text) {
    els.mediaNote.textContent = text;
    els.mediaNote.hidden = !text;
  }

  function ensureLocalMedia() {
    if (!state.media) {
      state.media = openLocalMedia();
    }
    return state.media;
  }

  async function openLocalMedia() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      noteMedia(
        'This browser cannot use a camera or microphone on this page (it needs a secure https address). ' +
          'You are in the room without them: you can see, hear and chat with the others.'
      );
      updateControls();
      return;
    }
    let stream = null;
    let denied = false;
    const attempts = [
      { audio: true, video: { width: { ideal: 1280 }, height: { ideal: 720 } } },
      { audio: true, video: false },
      { audio: false, video: true },
    ];
    for (const constraints of attempts) {
      try {
        stream = await navigator.mediaDevices.getUserMedia(constraints);
        break;
      } catch (error) {
        if (error && (error.name === 'NotAllowedError' || error.name === 'SecurityError')) {
          denied = true;
          break; // asking again would only annoy: the person said no
        }
      }
    }
    if (!stream) {
      noteMedia(
        denied
          ? 'You did not allow the camera and microphone, so you are in the room without them: the others ' +
              'cannot see or hear you, but you can see, hear and chat with them. To change this, allow them ' +
              "in your browser's site settings and rejoin."
          : 'No camera or microphone could be started, so you are in the room without them: you can see, ' +
              'hear and chat with the others.'
      );
      updateControls();
      return;
    }
    state.localStream = stream;
    state.audioTrack = stream.getAudioTracks()[0] || null;
    state.cameraTrack = stream.getVideoTracks()[0] || null;
    state.audioOn = state.audioTrack !== null;
    state.videoOn = state.cameraTrack !== null;
    if (!state.audioTrack) {
      noteMedia('No microphone was found: the others can see you but not hear you.');
    } else if (!state.cameraTrack) {
      noteMedia('No camera was found: the others can hear you but not see you.');
    }
    showLocalPreview();
    updateControls();
  }

  function showLocalPreview() {
    const track = currentVideoTrack();
    const video = els.localVideo;
    const shown = video.srcObject ? video.srcObject.getVideoTracks()[0] : null;
    if (shown !== track) {
      video.srcObject = track ? new MediaStream([track]) : null;
      if (track) {
        video.play().catch(() => {});
      }
    }
    video.classList.toggle(LOCAL_MIRROR_CLASS, !state.screenTrack); // a mirror for the camera only
    const placeholder = els.localTile.querySelector('[data-role="placeholder"]');
    placeholder.hidden = Boolean(track) && (state.videoOn || Boolean(state.screenTrack));
  }

  function stopLocalMedia() {
    [state.audioTrack, state.cameraTrack, state.screenTrack].forEach((track) => {
      if (track) {
        track.stop();
      }
    });
    state.screenTrack = null;
    els.localVideo.srcObject = null;
    [els.mic, els.camera, els.screen].forEach((button) => {
      button.disabled = true;
    });
  }

  function currentVideoTrack() {
    return state.screenTrack || state.cameraTrack;
  }

  function sendState() {
    send({ type: 'state', audio: state.audioOn, video: state.videoOn, screen: Boolean(state.screenTrack) });
  }

  function setControl(button, on, onTitle, offTitle) {
    button.className = CONTROL_BASE + ' ' + (on ? CONTROL_ON : CONTROL_OFF);
    button.setAttribute('aria-pressed', String(on));
    button.title = on ? onTitle : offTitle;
    const onIcon = button.querySelector('[data-role="on"]');
    const offIcon = button.querySelector('[data-role="off"]');
    if (onIcon && offIcon) {
      onIcon.hidden = !on;
      offIcon.hidden = on;
    }
  }

  function updateControls() {
    setControl(els.mic, state.audioOn, 'Turn the microphone off', 'Turn the microphone on');
    els.mic.disabled = !state.audioTrack;
    setControl(els.camera, state.videoOn, 'Turn the camera off', 'Turn the camera on');
    els.camera.disabled = !state.cameraTrack;
    const sharing = Boolean(state.screenTrack);
    els.screen.className = CONTROL_BASE + ' ' + (sharing ? CONTROL_ACTIVE : CONTROL_ON);
    els.screen.setAttribute('aria-pressed', String(sharing));
    els.screen.title = sharing ? 'Stop sharing your screen' : 'Share your screen';
    els.screen.setAttribute('aria-label', els.screen.title);
    const canShare = Boolean(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
    els.screen.hidden = !canShare; // phones cannot share their screen from a browser
    els.screen.disabled = !canShare;
    const tile = els.localTile;
    tile.querySelector('[data-role="indicator-audio"]').hidden = state.audioOn;
    tile.querySelector('[data-role="indicator-video"]').hidden = state.videoOn;
    tile.querySelector('[data-role="indicator-screen"]').hidden = !sharing;
    showLocalPreview();
    renderPeople();
  }

  function toggleMicrophone() {
    if (!state.audioTrack) {
      return;
    }
    state.audioOn = !state.audioOn;
    state.audioTrack.enabled = state.audioOn;
    sendState();
    updateControls();
  }

  function toggleCamera() {
    if (!state.cameraTrack) {
      return;
    }
    state.videoOn = !state.videoOn;
    state.cameraTrack.enabled = state.videoOn;
    sendState();
    updateControls();
  }

  function videoSenders() {
    const senders = [];
    state.peers.forEach((peer) => {
      const transceiver = peer.pc && videoTransceiver(peer.pc);
      if (transceiver) {
        senders.push(transceiver.sender);
      }
    });
    return senders;
  }

  function videoTransceiver(pc) {
    return pc.getTransceivers().find((t) => {
      const sends = t.direction === 'sendrecv' || t.direction === 'sendonly';
      return !t.stopped && sends && t.receiver.track && t.receiver.track.kind === 'video';
    });
  }

  async function replaceVideoTrack(track) {
    // replaceTrack switches what we send without a new offer/answer round.
    const replaced = videoSenders().map((sender) =>
      sender.replaceTrack(track).catch((error) => console.warn('live room:', error))
    );
    await Promise.all(replaced);
  }

  async function toggleScreen() {
    if (state.screenTrack) {
      await stopScreenShare();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (error) {
      if (error && error.name !== 'NotAllowedError' && error.name !== 'AbortError') {
        noteMedia('Your screen could not be shared (' + error.name + ').');
      }
      return; // NotAllowedError: the person cancelled the picker
    }
    const track = stream.getVideoTracks()[0];
    if (!track) {
      return;
    }
    if ('contentHint' in track) {
      track.contentHint = 'detail';
    }
    track.addEventListener('ended', stopScreenShare); // "Stop sharing" in the browser's own bar
    state.screenTrack = track;
    await replaceVideoTrack(track);
    sendState();
    updateControls();
  }

  async function stopScreenShare() {
    const track = state.screenTrack;
    if (!track) {
      return;
    }
    state.screenTrack = null;
    track.removeEventListener('ended', stopScreenShare);
    track.stop();
    await replaceVideoTrack(state.cameraTrack);
    sendState();
    updateControls();
  }

  // --- Peers and their connections -------------------------------------------------------------

  function addPeer(info) {
    let peer = state.peers.get(info.peer_id);
    if (peer) {
      Object.assign(peer.info, info);
      renderTile(peer);
      renderPeople();
      return peer;
    }
    peer = {
      id: info.peer_id,
      info: Object.assign({ name: 'Someone', audio: true, video: true, screen: false }, info),
      pc: null,
      makingOffer: false,
      ignoreOffer: false,
      pendingCandidates: [],
      remoteStream: new MediaStream(),
      lastIceRestart: 0,
      tile: null,
    };
    peer.tile = buildTile(peer);
    els.grid.appendChild(peer.tile.root);
    state.peers.set(peer.id, peer);
    renderTile(peer);
    renderPeople();
    return peer;
  }

  function isPolite(peer) {
    if (typeof state.seq === 'number' && typeof peer.info.seq === 'number') {
      return state.seq > peer.info.seq;
    }
    return String(state.peerId) > String(peer.id);
  }

  function replaceStalePeersOf(info) {
    // A reconnecting person is a new peer; the server may tell us their old peer left only
    // later (a silently dropped socket). Their older peer whose connection broke goes now
    // (a second tab of the same person, still connected or connecting, stays).
    state.peers.forEach((peer) => {
      if (peer.id !== info.peer_id && peer.info.user_id === info.user_id && BROKEN.has(connectionKey(peer))) {
        removePeer(peer.id);
      }
    });
  }

  function removePeer(peerId) {
    const peer = state.peers.get(peerId);
    if (!peer) {
      return;
    }
    state.peers.delete(peerId);
    if (peer.pc) {
      peer.pc.close();
      peer.pc = null;
    }
    peer.tile.video.srcObject = null;
    peer.tile.root.remove();
    renderPeople();
  }

  function teardownPeers() {
    Array.from(state.peers.keys()).forEach(removePeer);
  }

  function newConnection(peer) {
    const pc = new RTCPeerConnection({ iceServers: state.iceServers });
    peer.pc = pc;
    pc.onicecandidate = (event) => {
      if (event.candidate && peer.pc === pc) {
        send({ type: 'ice', to: peer.id, candidate: event.candidate.toJSON() });
      }
    };
    pc.ontrack = (event) => {
      if (peer.pc !== pc) {
        return;
      }
      if (!peer.remoteStream.getTracks().includes(event.track)) {
        peer.remoteStream.addTrack(event.track);
      }
      const video = peer.tile.video;
      if (video.srcObject !== peer.remoteStream) {
        video.srcObject = peer.remoteStream;
      }
      playRemote(peer);
    };
    pc.onconnectionstatechange = () => {
      if (peer.pc !== pc) {
        return;
      }
      renderTile(peer);
      renderPeople();
      if (pc.connectionState === 'failed') {
        restartIce(peer);
      }
    };
    return pc;
  }

  async function call(peer) {
    const pc = newConnection(peer);
    peer.initiator = true;
    // Always one audio and one video transceiver that can send, even without a camera: screen
    // sharing then needs no new negotiation (replaceTrack).
    if (state.audioTrack) {
      pc.addTrack(state.audioTrack, state.localStream);
    } else {
      pc.addTransceiver('audio', { direction: 'sendrecv' });
    }
    const video = currentVideoTrack();
    if (video) {
      pc.addTrack(video, state.localStream || new MediaStream([video]));
    } else {
      pc.addTransceiver('video', { direction: 'sendrecv' });
    }
    renderTile(peer);
    await sendOffer(peer);
  }

  async function sendOffer(peer, options) {
    const pc = peer.pc;
    try {
      peer.makingOffer = true;
      const offer = await pc.createOffer(options);
      if (pc.signalingState !== 'stable') {
        return; // an offer from them arrived meanwhile
      }
      await pc.setLocalDescription(offer);
      send({ type: 'offer', to: peer.id, sdp: pc.localDescription.sdp });
    } finally {
      peer.makingOffer = false;
    }
  }

  async function attachLocalMedia(pc) {
    // Answering: send our tracks on the transceivers their offer created.
    const work = [];
    pc.getTransceivers().forEach((transceiver) => {
      if (transceiver.stopped || transceiver.sender.track || !transceiver.receiver.track) {
        return;
      }
      const kind = transceiver.receiver.track.kind;
      const track = kind === 'audio' ? state.audioTrack : currentVideoTrack();
      transceiver.direction = 'sendrecv';
      if (track) {
        work.push(transceiver.sender.replaceTrack(track));
        if (state.localStream && transceiver.sender.setStreams) {
          transceiver.sender.setStreams(state.localStream);
        }
      }
    });
    await Promise.all(work);
  }

  async function offerReceived(message) {
    if (typeof message.sdp !== 'string' || !message.from) {
      return;
    }
    await ensureLocalMedia();
    const peer = state.peers.get(message.from) || addPeer({ peer_id: message.from });
    const pc = peer.pc || newConnection(peer);
    const collision = peer.makingOffer || pc.signalingState !== 'stable';
    peer.ignoreOffer = !isPolite(peer) && collision;
    if (peer.ignoreOffer) {
      return; // we are impolite: our offer wins, theirs is dropped
    }
    if (collision) {
      await pc.setLocalDescription({ type: 'rollback' });
    }
    await pc.setRemoteDescription({ type: 'offer', sdp: message.sdp });
    await attachLocalMedia(pc);
    await pc.setLocalDescription(await pc.createAnswer());
    send({ type: 'answer', to: peer.id, sdp: pc.localDescription.sdp });
    await flushCandidates(peer);
    renderTile(peer);
    // After a rolled-back offer, transceivers we had added may be left out of their offer.
    if (pc.getTransceivers().some((t) => !t.stopped && t.mid === null)) {
      await sendOffer(peer);
    }
  }

  async function answerReceived(message) {
    const peer = state.peers.get(message.from);
    if (!peer || !peer.pc || typeof message.sdp !== 'string' || peer.pc.signalingState !== 'have-local-offer') {
      return;
    }
    await peer.pc.setRemoteDescription({ type: 'answer', sdp: message.sdp });
    await flushCandidates(peer);
  }

  async function candidateReceived(message) {
    const peer = state.peers.get(message.from);
    const candidate = message.candidate;
    if (!peer || !candidate || typeof candidate !== 'object') {
      return;
    }
    if (!peer.pc || !peer.pc.remoteDescription) {
      peer.pendingCandidates.push(candidate);
      return;
    }
    await addCandidate(peer, candidate);
  }

  async function addCandidate(peer, candidate) {
    try {
      await peer.pc.addIceCandidate(candidate);
    } catch (error) {
      if (!peer.ignoreOffer) {
        console.warn('live room: ICE candidate refused', error);
      }
    }
  }

  async function flushCandidates(peer) {
    const pending = peer.pendingCandidates;
    peer.pendingCandidates = [];
    for (const candidate of pending) {
      await addCandidate(peer, candidate);
    }
  }

  async function freshIceServers() {
    // TURN credentials are short-lived: ask for new ones before restarting ICE.
    try {
      const response = await fetch(config.ice_servers_url, {
        credentials: 'same-origin',
        headers: { Accept: 'application/json' },
      });
      if (response.ok) {
        const body = await response.json();
        if (Array.isArray(body.ice_servers)) {
          state.iceServers = body.ice_servers;
        }
      }
    } catch (error) {
      /* keep the ones we have */
    }
    return state.iceServers;
  }

  function restartIce(peer) {
    // The side that called restarts; the other answers the new offer.
    if (!peer.initiator || Date.now() - peer.lastIceRestart < ICE_RESTART_GAP_MS) {
      return;
    }
    peer.lastIceRestart = Date.now();
    enqueue(async () => {
      if (!peer.pc || state.peers.get(peer.id) !== peer) {
        return;
      }
      const iceServers = await freshIceServers();
      try {
        peer.pc.setConfiguration({ iceServers: iceServers });
      } catch (error) {
        /* some browsers refuse changes here; the restart still helps */
      }
      await sendOffer(peer, { iceRestart: true });
    });
  }

  function playRemote(peer) {
    const video = peer.tile.video;
    const started = video.play();
    if (started && started.catch) {
      started.catch((error) => {
        if (error && error.name === 'NotAllowedError') {
          // The browser refuses sound before a tap: play muted and offer to turn the sound on.
          video.muted = true;
          peer.tile.unmute.hidden = false;
          video.play().catch(() => {});
        }
      });
    }
  }

  // --- Tiles and the list of people ------------------------------------------------------------

  function buildTile(peer) {
    const tile = element('figure', TILE_CLASS);
    tile.dataset.peerId = peer.id;
    tile.dataset.connectionState = 'new';
    tile.dataset.videoPlaying = 'false';
    const video = element('video', 'size-full object-cover');
    video.autoplay = true;
    video.playsInline = true;
    const markPlaying = () => {
      if (video.videoWidth > 0 && !video.paused) {
        tile.dataset.videoPlaying = 'true';
        renderTile(peer);
      }
    };
    video.addEventListener('playing', markPlaying);
    video.addEventListener('resize', markPlaying);
    video.addEventListener('loadeddata', markPlaying);
    const placeholder = element(
      'div',
      'absolute inset-0 flex items-center justify-center text-4xl font-semibold text-white/80',
      initial(peer.info.name)
    );
    const connection = element('span', 'badge badge-gray');
    const connectionWrap = element('div', 'absolute top-2 left-2');
    connectionWrap.appendChild(connection);
    const unmute = element('button', 'btn btn-secondary btn-sm absolute top-2 right-2');
    unmute.type = 'button';
    unmute.appendChild(icon('volume-x'));
    unmute.appendChild(document.createTextNode('Tap to hear'));
    unmute.hidden = true;
    unmute.addEventListener('click', () => {
      video.muted = false;
      video.play().catch(() => {});
      unmute.hidden = true;
    });
    const caption = element(
      'figcaption',
      'absolute inset-x-0 bottom-0 flex items-center gap-2 bg-black/60 px-3 py-1.5 text-sm text-white'
    );
    const name = element('span', 'min-w-0 flex-1 truncate');
    const audioOff = indicator('mic-off', 'Microphone off');
    const videoOff = indicator('video-off', 'Camera off');
    const screen = indicator('monitor', 'Sharing the screen');
    caption.append(name, audioOff, videoOff, screen);
    tile.append(video, placeholder, connectionWrap, unmute, caption);
    return { root: tile, video, placeholder, connection, unmute, name, audioOff, videoOff, screen };
  }

  function indicator(iconName, label) {
    const span = element('span');
    span.title = label;
    span.appendChild(icon(iconName));
    span.appendChild(element('span', 'sr-only', label));
    span.hidden = true;
    return span;
  }

  function connectionKey(peer) {
    if (!peer.pc) {
      return 'waiting';
    }
    return peer.pc.connectionState || 'new';
  }

  function renderTile(peer) {
    const tile = peer.tile;
    const key = connectionKey(peer);
    tile.root.dataset.connectionState = peer.pc ? peer.pc.connectionState || 'new' : 'new';
    const label = CONNECTION_LABELS[key] || CONNECTION_LABELS.new;
    tile.connection.textContent = label[0];
    tile.connection.className = label[1];
    tile.connection.parentElement.hidden = key === 'connected';
    tile.name.textContent = peer.info.name + (peer.info.user_id === state.room.mentor_id ? ' · mentor' : '');
    tile.placeholder.textContent = initial(peer.info.name);
    const sendsVideo = peer.info.video !== false || peer.info.screen === true;
    const showsVideo = tile.root.dataset.videoPlaying === 'true' && sendsVideo;
    tile.placeholder.hidden = showsVideo;
    tile.audioOff.hidden = peer.info.audio !== false;
    tile.videoOff.hidden = peer.info.video !== false || peer.info.screen === true;
    tile.screen.hidden = peer.info.screen !== true;
  }

  function personRow(name, detail, flags) {
    const row = element('li', 'flex min-h-11 items-center gap-2 px-4 py-2');
    row.appendChild(element('span', 'min-w-0 flex-1 truncate', name));
    if (detail) {
      row.appendChild(element('span', 'text-xs text-gray-500', detail));
    }
    if (flags.audio === false) {
      row.appendChild(indicator('mic-off', 'Microphone off'));
      row.lastChild.hidden = false;
    }
    if (flags.video === false) {
      row.appendChild(indicator('video-off', 'Camera off'));
      row.lastChild.hidden = false;
    }
    if (flags.screen === true) {
      row.appendChild(indicator('monitor', 'Sharing the screen'));
      row.lastChild.hidden = false;
    }
    return row;
  }

  function renderPeople() {
    const rows = [];
    const me = state.you || {};
    const mentorId = state.room && state.room.mentor_id;
    rows.push(
      personRow(me.name + ' (you)', me.user_id === mentorId ? 'mentor' : '', {
        audio: state.audioOn,
        video: state.videoOn,
        screen: Boolean(state.screenTrack),
      })
    );
    state.peers.forEach((peer) => {
      const labels = [];
      if (peer.info.user_id === mentorId) {
        labels.push('mentor');
      }
      const key = connectionKey(peer);
      if (key !== 'connected') {
        labels.push((CONNECTION_LABELS[key] || CONNECTION_LABELS.new)[0].toLowerCase());
      }
      rows.push(personRow(peer.info.name, labels.join(' · '), peer.info));
    });
    els.people.replaceChildren(...rows);
    els.peopleCount.textContent = String(rows.length);
  }

  // --- Chat -----------------------------------------------------------------------------------

  function renderChatHistory(messages) {
    state.chatIds.clear();
    els.chatMessages.replaceChildren();
    messages.forEach((message) => appendChat(message, false));
    if (!messages.length) {
      const empty = element('li', 'text-gray-500', 'No messages yet.');
      empty.dataset.role = 'empty';
      els.chatMessages.appendChild(empty);
    }
  }

  function appendChat(message, isNew) {
    if (message.id !== undefined && state.chatIds.has(message.id)) {
      return;
    }
    state.chatIds.add(message.id);
    const empty = els.chatMessages.querySelector('[data-role="empty"]');
    if (empty) {
      empty.remove();
    }
    const mine = state.you && message.author_id === state.you.user_id;
    const item = element('li', mine ? 'rounded-md bg-brand/10 px-3 py-2' : 'rounded-md bg-gray-50 px-3 py-2');
    item.dataset.chatId = String(message.id);
    const head = element('div', 'flex items-baseline gap-2');
    head.appendChild(element('span', 'font-semibold', mine ? 'You' : message.author_name || 'Someone'));
    const time = element('time', 'text-xs text-gray-500', clockTime(message.at));
    time.dateTime = message.at || '';
    head.appendChild(time);
    item.appendChild(head);
    item.appendChild(element('p', 'break-words whitespace-pre-wrap', message.body || ''));
    els.chatMessages.appendChild(item);
    els.chatMessages.scrollTop = els.chatMessages.scrollHeight;
    if (isNew && !mine && !els.chatPanel.open) {
      state.unread += 1;
      els.chatUnread.textContent = String(state.unread);
      els.chatUnread.hidden = false;
    }
  }

  let chatErrorTimer = null;

  function showChatError(text) {
    els.chatError.textContent = text;
    els.chatError.hidden = false;
    clearTimeout(chatErrorTimer);
    chatErrorTimer = setTimeout(() => {
      els.chatError.hidden = true;
    }, 8000);
  }

  function updateChatForm() {
    const open = socketOpen() && root.dataset.state === 'connected';
    els.chatInput.disabled = !open;
    els.chatSend.disabled = !open;
    els.chatInput.placeholder = open ? 'Write a message' : 'Chat is available while you are connected';
  }

  function submitChat(event) {
    event.preventDefault();
    const body = els.chatInput.value.trim();
    if (!body) {
      return;
    }
    if (body.length > CHAT_MAX_CHARS) {
      showChatError('Messages are limited to ' + CHAT_MAX_CHARS + ' characters.');
      return;
    }
    if (!send({ type: 'chat', body: body })) {
      showChatError('Not connected: your message was not sent.');
      return;
    }
    els.chatInput.value = '';
    els.chatError.hidden = true;
  }

  // --- Leaving --------------------------------------------------------------------------------

  function leave() {
    state.finished = true;
    send({ type: 'leave' });
    if (state.socket) {
      const socket = state.socket;
      state.socket = null;
      socket.onclose = null;
      socket.close(1000);
    }
    clearTimeout(state.reconnectTimer);
    clearInterval(state.countdownTimer);
    stopPing();
    teardownPeers();
    stopLocalMedia();
    setBanner('closed', 'You left the room.', { label: 'Rejoin', run: () => window.location.reload() });
  }

  function endForEveryone() {
    if (!window.confirm('End the session for everyone? The room closes for all participants.')) {
      return;
    }
    send({ type: 'end' });
  }

  // --- Start ----------------------------------------------------------------------------------

  const wide = window.matchMedia('(min-width: 1024px)').matches;
  els.chatPanel.open = wide; // on a phone the chat sits collapsed below the videos
  els.peoplePanel.open = wide;
  els.chatPanel.addEventListener('toggle', () => {
    if (els.chatPanel.open) {
      state.unread = 0;
      els.chatUnread.hidden = true;
      els.chatMessages.scrollTop = els.chatMessages.scrollHeight;
    }
  });
  els.mic.addEventListener('click', toggleMicrophone);
  els.camera.addEventListener('click', toggleCamera);
  els.screen.addEventListener('click', () => {
    toggleScreen().catch((error) => console.warn('live room:', error));
  });
  els.leave.addEventListener('click', leave);
  if (els.end) {
    els.end.addEventListener('click', endForEveryone);
  }
  els.chatForm.addEventListener('submit', submitChat);
  window.addEventListener('online', () => {
    if (!state.finished && !state.socket) {
      retryNow();
    }
  });
  window.addEventListener('pagehide', () => {
    send({ type: 'leave' });
  });
  updateControls();
  renderPeople();
  connect();
})();
