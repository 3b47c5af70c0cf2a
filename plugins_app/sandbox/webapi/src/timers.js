// setTimeout / setInterval / clearTimeout / clearInterval, inside a call only.
//
// Timers are plain JavaScript here: no engine timer exists (the bootstrap deletes deno_core's).
// The bootstrap's run loop drives them (see bootstrap.js `run`): while the hook's promise is
// pending and a timer exists, it waits in Python (sleep with the GIL released, bounded by
// the call's deadline) until the earliest timer is due, fires it, runs the microtasks,
// repeats; when the result is sent, every timer is cancelled (cancelAll), so none ever
// fires in a later call. Ordering as in Node.js: by due time, then by creation; a delay
// below 1 ms, above 2^31-1 ms, or not a number is 1 ms. Ids are numbers (as in browsers
// and Deno; Node.js returns Timeout objects).
//
// State lives in null-prototype objects with integer keys (a binary heap), never in arrays
// or Maps, whose methods and iterators plugin code could replace.
import { apply, create, monotonicNow, NumberCtor, TypeErrorCtor } from "./intrinsics.js";

const TIMEOUT_MAX = 2 ** 31 - 1;
let heap = create(null);   // index -> timer, ordered by (due, seq)
let size = 0;
let live = create(null);   // id -> timer, for timers not cleared
let liveCount = 0;
let nextId = 1;
let seq = 0;

const before = (a, b) => a.due < b.due || (a.due === b.due && a.seq < b.seq);
const swap = (i, j) => { const t = heap[i]; heap[i] = heap[j]; heap[j] = t; };
const pushHeap = (timer) => {
  let i = size++;
  heap[i] = timer;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(heap[i], heap[parent])) break;
    swap(i, parent);
    i = parent;
  }
};
const popHeap = () => {
  const top = heap[0];
  size--;
  if (size > 0) {
    heap[0] = heap[size];
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < size && before(heap[l], heap[m])) m = l;
      if (r < size && before(heap[r], heap[m])) m = r;
      if (m === i) break;
      swap(i, m);
      i = m;
    }
  }
  delete heap[size];
  return top;
};

const clampDelay = (delay) => {
  delay = NumberCtor(delay);
  if (!(delay >= 1 && delay <= TIMEOUT_MAX)) delay = 1;  // NaN too
  return delay;
};

export const setTimer = (callback, delay, repeat, args) => {
  if (typeof callback !== "function") {
    throw new TypeErrorCtor('The "callback" argument must be of type function. Received ' + (callback === null ? "null" : typeof callback));
  }
  delay = clampDelay(delay);
  const id = nextId++;
  const timer = { id, callback, args, delay: repeat ? delay : 0, due: monotonicNow() + delay, seq: seq++, cleared: false };
  live[id] = timer;
  liveCount++;
  pushHeap(timer);
  return id;
};

export const clearTimer = (id) => {
  if (typeof id === "string") id = NumberCtor(id);
  if (typeof id !== "number") return;  // an object, undefined, null: nothing (ours are numbers)
  const timer = live[id];
  if (timer === undefined) return;
  timer.cleared = true;
  delete live[id];
  liveCount--;
};

const dropCleared = () => {
  while (size > 0 && heap[0].cleared) popHeap();
};

// -- for the run loop --------------------------------------------------------------------
// Whether any timer is pending.
export const hasTimers = () => liveCount > 0;

// Milliseconds until the earliest pending timer is due (0 if due now), or -1 if none.
export const msUntilNext = () => {
  dropCleared();
  if (size === 0) return -1;
  const wait = heap[0].due - monotonicNow();
  return wait > 0 ? wait : 0;
};

// Fires the earliest timer if it is due. Returns true if one ran. Throws what the callback threw.
export const fireNext = () => {
  dropCleared();
  if (size === 0 || heap[0].due > monotonicNow()) return false;
  const timer = popHeap();
  if (timer.delay > 0) {
    timer.due = monotonicNow() + timer.delay;
    timer.seq = seq++;
    pushHeap(timer);  // rescheduled first: clearInterval inside the callback still works
  } else {
    timer.cleared = true;
    delete live[timer.id];
    liveCount--;
  }
  apply(timer.callback, undefined, timer.args);
  return true;
};

// Cancels every timer (the call's result is being sent, or the plugin just loaded).
export const cancelAll = () => {
  if (size === 0 && liveCount === 0) return;
  heap = create(null);
  live = create(null);
  size = 0;
  liveCount = 0;
};

export function setTimeout(callback, delay = 0, ...args) { return setTimer(callback, delay, false, args); }
export function setInterval(callback, delay = 0, ...args) { return setTimer(callback, delay, true, args); }
export function clearTimeout(id = undefined) { clearTimer(id); }
export function clearInterval(id = undefined) { clearTimer(id); }
