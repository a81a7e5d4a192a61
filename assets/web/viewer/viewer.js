// avatar view / avatar serve: an avatar bundle's GLB in three.js — orbit camera, ARKit expression and head-pose
// sliders, playback of a motion file (ARKit weights + head yaw/pitch/roll) in sync with its audio, and (serve) live
// listening: the microphone (and camera) streamed to the server's /listen WebSocket, the codes that come back
// animating the head. Reads view.json: {"title", "glb", "motion", "audio", "live": endpoint or absent}.
// window.viewer is a small handle for tests.
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';

const $ = (id) => document.getElementById(id);
const DEG = Math.PI / 180;

const stage = $('stage');
const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio);
renderer.outputColorSpace = THREE.SRGBColorSpace;
stage.appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0xeceef1);
scene.add(new THREE.HemisphereLight(0xffffff, 0x8a8f99, 1.6));
const key = new THREE.DirectionalLight(0xffffff, 1.4);
key.position.set(0.4, 0.6, 1.0);
scene.add(key);
const camera = new THREE.PerspectiveCamera(20, 1, 0.01, 100);
const controls = new OrbitControls(camera, renderer.domElement);
controls.enableDamping = true;

function resize() {
  const { clientWidth: w, clientHeight: h } = stage;
  renderer.setSize(w, h, false);
  camera.aspect = w / Math.max(h, 1);
  camera.updateProjectionMatrix();
}
window.addEventListener('resize', resize);

function slider(parent, label, min, max, step, value, onInput) {
  const row = document.createElement('div');
  row.className = 'row';
  row.innerHTML = `<label title="${label}">${label}</label><input type="range" min="${min}" max="${max}" step="${step}" value="${value}"><output>${value}</output>`;
  const input = row.querySelector('input');
  const out = row.querySelector('output');
  input.dataset.name = label;
  input.addEventListener('input', () => { out.textContent = Number(input.value).toFixed(2); onInput(Number(input.value)); });
  parent.appendChild(row);
  return { set(v) { input.value = v; out.textContent = Number(v).toFixed(2); } };
}

const state = { meshes: [], neck: null, head: { yaw: 0, pitch: 0, roll: 0 }, sliders: {}, headSliders: {},
                motion: null, audio: null, playing: false, t0: 0, time: 0,
                live: { queue: [], received: 0, applied: 0, errors: [], last: 0, socket: null } };

function setWeight(name, value) {
  for (const mesh of state.meshes) {
    const index = mesh.morphTargetDictionary[name];
    if (index !== undefined) mesh.morphTargetInfluences[index] = value;
  }
}

function applyHead() {
  // the avatar's head frame (x: the head's left, y up, z out of the face): R = Ry(yaw) Rx(pitch) Rz(roll)
  if (state.neck) state.neck.rotation.set(state.head.pitch, state.head.yaw, state.head.roll, 'YXZ');
}

function showFrame(t) {
  const m = state.motion;
  const k = Math.max(0, Math.min(m.weights.length - 1, Math.floor(t * m.fps + 1e-6)));
  m.names.forEach((name, j) => { setWeight(name, m.weights[k][j]); state.sliders[name]?.set(m.weights[k][j]); });
  [state.head.yaw, state.head.pitch, state.head.roll] = m.head[k];
  for (const axis of ['yaw', 'pitch', 'roll']) state.headSliders[axis].set(state.head[axis] / DEG);
  applyHead();
  state.time = t;
  state.frame = k;
  $('scrub').value = t;
  $('clock').textContent = t.toFixed(2);
}

function duration() { return state.motion ? state.motion.weights.length / state.motion.fps : 0; }

function play() {
  if (!state.motion) return;
  state.playing = true;
  $('play').textContent = 'pause';
  if (state.time >= duration() - 1e-3) state.time = 0;
  if (state.audio) { state.audio.currentTime = state.time; state.audio.play().catch(() => {}); }
  state.t0 = performance.now() / 1000 - state.time;
}

function pause() {
  state.playing = false;
  $('play').textContent = 'play';
  if (state.audio) state.audio.pause();
}

function seek(t) {
  const time = Math.max(0, Math.min(duration(), t));
  if (state.audio) state.audio.currentTime = time;
  state.t0 = performance.now() / 1000 - time;
  showFrame(time);
}

function frameCamera(object) {
  const box = new THREE.Box3().setFromObject(object);
  const size = box.getSize(new THREE.Vector3());
  const centre = box.getCenter(new THREE.Vector3());
  centre.y += 0.12 * size.y;  // the face, not the neck
  const distance = 0.6 * size.y / Math.tan(camera.fov * DEG / 2);
  camera.position.set(centre.x, centre.y, centre.z + distance);
  camera.near = distance / 50;
  camera.far = distance * 50;
  camera.updateProjectionMatrix();
  controls.target.copy(centre);
  controls.update();
}

async function main() {
  const config = await (await fetch('view.json')).json();
  $('title').textContent = config.title || 'avatar';
  document.title = `avatar view — ${config.title || ''}`;
  const gltf = await new GLTFLoader().loadAsync(config.glb);
  scene.add(gltf.scene);
  gltf.scene.traverse((o) => { if (o.isMesh && o.morphTargetDictionary) state.meshes.push(o); });
  state.neck = gltf.scene.getObjectByName('neck');
  resize();
  frameCamera(gltf.scene);

  for (const [axis, range] of [['yaw', 60], ['pitch', 40], ['roll', 40]]) {
    state.headSliders[axis] = slider($('head'), axis, -range, range, 0.5, 0, (v) => { state.head[axis] = v * DEG; applyHead(); });
  }
  const names = state.meshes.length ? Object.keys(state.meshes[0].morphTargetDictionary) : [];
  for (const name of names) state.sliders[name] = slider($('shapes'), name, 0, 1, 0.01, 0, (v) => setWeight(name, v));
  $('reset').addEventListener('click', () => {
    pause();
    for (const name of names) { setWeight(name, 0); state.sliders[name].set(0); }
    for (const axis of ['yaw', 'pitch', 'roll']) { state.head[axis] = 0; state.headSliders[axis].set(0); }
    applyHead();
  });

  if (config.motion) {
    state.motion = await (await fetch(config.motion)).json();
    if (config.audio) { state.audio = new Audio(config.audio); state.audio.preload = 'auto'; }
    $('playback').hidden = false;
    $('scrub').max = duration();
    $('play').addEventListener('click', () => (state.playing ? pause() : play()));
    $('scrub').addEventListener('input', () => seek(Number($('scrub').value)));
    if (state.audio) state.audio.addEventListener('ended', pause);
    showFrame(0);
  }
  $('status').textContent = `${names.length} expressions` + (state.motion ? `; motion ${duration().toFixed(2)} s at ${state.motion.fps} fps` : '')
    + (state.audio ? ' with audio' : '');
  if (config.live) {
    $('live').hidden = false;
    $('listen').addEventListener('click', () => startListening(config.live, $('camera').checked));
  }
}

// ---------------------------------------------------------------------------------------------- live (avatar serve)
function applyLiveFrame(frame) {
  for (const [name, value] of Object.entries(frame.weights)) setWeight(name, value);
  const [pitch, yaw, roll] = frame.head;
  Object.assign(state.head, { pitch: pitch * DEG, yaw: yaw * DEG, roll: roll * DEG });
  applyHead();
}

function stepLive(now) {
  // frames come in bursts (a chunk every ~100 ms): play them out 1/30 s apart on the page's clock; at a low frame
  // rate show the newest due frame (never fall behind), and catch up when the server is far ahead
  const live = state.live;
  if (!live.queue.length) { live.clock = null; return; }
  if (live.clock === null || live.clock === undefined) live.clock = now - 1000 / 30;
  let due = Math.floor((now - live.clock) * 30 / 1000);
  if (live.queue.length - due > 6) due = live.queue.length - 3;
  if (due < 1) return;
  const played = live.queue.splice(0, Math.min(due, live.queue.length));
  live.clock += played.length * 1000 / 30;
  applyLiveFrame(played[played.length - 1]);
  live.applied += played.length;
}

async function startListening(endpoint, withCamera) {
  const marks = state.live.marks = { click: performance.now() };
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: withCamera });
  marks.microphone = performance.now();
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/${endpoint}?video=${withCamera ? 1 : 0}`;
  const socket = new WebSocket(url);
  socket.binaryType = 'arraybuffer';
  state.live.socket = socket;
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = () => reject(new Error('cannot connect')); });
  marks.connected = performance.now();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    marks.firstCodes = marks.firstCodes || performance.now();
    if (message.type === 'codes') { state.live.queue.push(...message.frames); state.live.received += message.frames.length; }
    else if (message.type === 'error') { state.live.errors.push(message.message); $('status').textContent = message.message; }
  };
  socket.onclose = () => { $('status').textContent = 'disconnected'; };
  const context = new AudioContext({ sampleRate: 16000 });
  const source = context.createMediaStreamSource(media);
  const processor = context.createScriptProcessor(1024, 1, 1);  // 64 ms: small enough to keep latency low
  processor.onaudioprocess = (event) => {
    if (socket.readyState !== WebSocket.OPEN) return;
    marks.firstAudio = marks.firstAudio || performance.now();
    socket.send(new Float32Array(event.inputBuffer.getChannelData(0)).buffer);
  };
  source.connect(processor);
  processor.connect(context.destination);
  if (withCamera && media.getVideoTracks().length) {
    const video = document.createElement('video');
    video.srcObject = media;
    video.muted = true;
    await video.play();
    const canvas = document.createElement('canvas');
    canvas.width = 320; canvas.height = 240;
    const start = performance.now();
    setInterval(() => {
      if (socket.readyState !== WebSocket.OPEN) return;
      canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height);
      const jpeg = canvas.toDataURL('image/jpeg', 0.7).split(',')[1];
      socket.send(JSON.stringify({ type: 'frame', t: (performance.now() - start) / 1000, jpeg }));
    }, 1000 / 15);
  }
  $('status').textContent = 'listening…';
  $('listen').disabled = true;
}

function animate(now) {
  requestAnimationFrame(animate);
  stepLive(now || performance.now());
  if (state.playing) {
    const t = state.audio && !state.audio.paused ? state.audio.currentTime : performance.now() / 1000 - state.t0;
    if (t >= duration()) { showFrame(duration()); pause(); } else showFrame(t);
  }
  controls.update();
  renderer.render(scene, camera);
}

const ready = main();
animate();
window.viewer = {
  ready,
  setWeight: (name, v) => { setWeight(name, v); state.sliders[name]?.set(v); },
  setHead: (yaw, pitch, roll) => { Object.assign(state.head, { yaw: yaw * DEG, pitch: pitch * DEG, roll: roll * DEG }); applyHead(); },
  seek, play, pause,
  get frame() { return state.frame; },
  get names() { return Object.keys(state.sliders); },
  get live() { return { received: state.live.received, applied: state.live.applied, errors: state.live.errors,
                        marks: state.live.marks,
                        jawOpen: state.meshes[0]?.morphTargetInfluences[state.meshes[0].morphTargetDictionary.jawOpen] }; },
  weight: (name) => state.meshes[0]?.morphTargetInfluences[state.meshes[0].morphTargetDictionary[name]],
  listen: (withCamera = false) => startListening('listen', withCamera),
};
ready.catch((error) => { $('status').textContent = `error: ${error.message}`; console.error(error); });
