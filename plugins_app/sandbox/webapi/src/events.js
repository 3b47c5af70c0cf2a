// Event, EventTarget, AbortController, AbortSignal (DOM Standard), hand-written: without a
// document tree there is no capture/bubble path, and what is left is small and specified
// exactly (listener list, once/passive/signal options, dispatch flags, abort algorithms).
import { domException } from "./domexception.js";
import {
  apply, define, defineProperties, isArray, StringCtor, SymbolToStringTag, TypeErrorCtor, WeakMapCtor, wmGet, wmHas, wmSet,
} from "./intrinsics.js";
import { clearTimer, setTimer } from "./timers.js";
import { performanceNow } from "./performance.js";

const events = new WeakMapCtor();
const eventState = (self) => {
  if (self === null || typeof self !== "object" || !apply(wmHas, events, [self])) {
    throw new TypeErrorCtor('Value of "this" must be of type Event');
  }
  return apply(wmGet, events, [self]);
};
const listOf = (items) => {
  const out = [];
  for (let i = 0; i < items.length; i++) define(out, i, { value: items[i], writable: true, enumerable: true, configurable: true });
  return out;
};

export class Event {
  constructor(type, options = undefined) {
    if (arguments.length === 0) throw new TypeErrorCtor('The "type" argument must be specified');
    if (options !== undefined && options !== null && typeof options !== "object" && typeof options !== "function") {
      throw new TypeErrorCtor('The "options" argument must be of type object.');
    }
    apply(wmSet, events, [this, {
      type: `${type}`,
      bubbles: !!(options && options.bubbles),
      cancelable: !!(options && options.cancelable),
      composed: !!(options && options.composed),
      defaultPrevented: false,
      timeStamp: performanceNow(),
      target: null,
      currentTarget: null,
      phase: 0,
      stop: false,
      stopImmediate: false,
      passive: false,
      dispatching: false,
    }]);
  }

  get type() { return eventState(this).type; }
  get target() { return eventState(this).target; }
  get srcElement() { return eventState(this).target; }
  get currentTarget() { return eventState(this).currentTarget; }
  get eventPhase() { return eventState(this).phase; }
  get bubbles() { return eventState(this).bubbles; }
  get cancelable() { return eventState(this).cancelable; }
  get composed() { return eventState(this).composed; }
  get defaultPrevented() { const s = eventState(this); return s.cancelable && s.defaultPrevented; }
  get returnValue() { const s = eventState(this); return !(s.cancelable && s.defaultPrevented); }
  set returnValue(value) { if (!value) this.preventDefault(); }
  get cancelBubble() { return eventState(this).stop; }
  set cancelBubble(value) { if (value) eventState(this).stop = true; }
  get isTrusted() { eventState(this); return false; }
  get timeStamp() { return eventState(this).timeStamp; }

  composedPath() {
    const s = eventState(this);
    return s.dispatching && s.currentTarget !== null ? [s.currentTarget] : [];
  }

  preventDefault() {
    const s = eventState(this);
    if (s.cancelable && !s.passive) s.defaultPrevented = true;
  }

  stopPropagation() { eventState(this).stop = true; }

  stopImmediatePropagation() {
    const s = eventState(this);
    s.stop = true;
    s.stopImmediate = true;
  }
}
const PHASES = [["NONE", 0], ["CAPTURING_PHASE", 1], ["AT_TARGET", 2], ["BUBBLING_PHASE", 3]];
for (const [name, value] of PHASES) {
  define(Event, name, { value, enumerable: true });
  define(Event.prototype, name, { value, enumerable: true });
}
define(Event.prototype, SymbolToStringTag, { value: "Event", configurable: true });
for (const name of ["type", "target", "srcElement", "currentTarget", "eventPhase", "bubbles", "cancelable", "composed",
  "defaultPrevented", "returnValue", "cancelBubble", "isTrusted", "timeStamp", "composedPath", "preventDefault",
  "stopPropagation", "stopImmediatePropagation"]) {
  const desc = Object.getOwnPropertyDescriptor(Event.prototype, name);
  desc.enumerable = true;
  define(Event.prototype, name, desc);
}

// -- EventTarget -----------------------------------------------------------------------------
const targets = new WeakMapCtor();  // EventTarget -> { [type]: [listener records] }
const listenersOf = (self) => {
  if (self === null || typeof self !== "object" || !apply(wmHas, targets, [self])) {
    throw new TypeErrorCtor('Value of "this" must be of type EventTarget');
  }
  return apply(wmGet, targets, [self]);
};
const flatten = (options) => {
  if (typeof options === "boolean") return { capture: options, once: false, passive: false, signal: undefined };
  if (options === null || (typeof options !== "object" && typeof options !== "function")) {
    return { capture: !!options, once: false, passive: false, signal: undefined };
  }
  return { capture: !!options.capture, once: !!options.once, passive: !!options.passive, signal: options.signal };
};
const arrayIndexOf = Array.prototype.indexOf, arraySplice = Array.prototype.splice;

export class EventTarget {
  constructor() {
    apply(wmSet, targets, [this, { __proto__: null }]);
  }

  addEventListener(type, listener, options = undefined) {
    if (arguments.length < 2) throw new TypeErrorCtor('The "type" and "listener" arguments must be specified');
    const map = listenersOf(this);
    const { capture, once, passive, signal } = flatten(options);
    if (listener === null || listener === undefined) return;
    if (typeof listener !== "function" && typeof listener !== "object") {
      throw new TypeErrorCtor('The "listener" argument must be an instance of EventListener.');
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeErrorCtor('The "options.signal" property must be an instance of AbortSignal.');
    }
    if (signal !== undefined && signal.aborted) return;
    type = `${type}`;
    const list = map[type] || (map[type] = []);
    for (let i = 0; i < list.length; i++) if (list[i].callback === listener && list[i].capture === capture) return;
    const record = { callback: listener, capture, once, passive, removed: false };
    define(list, list.length, { value: record, writable: true, enumerable: true, configurable: true });
    if (signal !== undefined) {
      addAbortAlgorithm(signal, () => {
        const current = map[type];
        if (current) {
          record.removed = true;
          const index = apply(arrayIndexOf, current, [record]);
          if (index !== -1) apply(arraySplice, current, [index, 1]);
        }
      });
    }
  }

  removeEventListener(type, listener, options = undefined) {
    if (arguments.length < 2) throw new TypeErrorCtor('The "type" and "listener" arguments must be specified');
    const map = listenersOf(this);
    const capture = typeof options === "boolean" ? options : !!(options && options.capture);
    const list = map[`${type}`];
    if (!list) return;
    for (let i = 0; i < list.length; i++) {
      if (list[i].callback === listener && list[i].capture === capture) {
        list[i].removed = true;
        apply(arraySplice, list, [i, 1]);
        return;
      }
    }
  }

  dispatchEvent(event) {
    const map = listenersOf(this);
    if (!(event !== null && typeof event === "object" && apply(wmHas, events, [event]))) {
      throw new TypeErrorCtor('The "event" argument must be an instance of Event.');
    }
    const s = apply(wmGet, events, [event]);
    if (s.dispatching) throw domException("The event is already being dispatched", "InvalidStateError");
    s.dispatching = true;
    s.target = this;
    s.currentTarget = this;
    s.phase = 2;
    try {
      const list = map[s.type];
      if (list) {
        const snapshot = listOf(list);
        for (let i = 0; i < snapshot.length; i++) {
          const record = snapshot[i];
          if (record.removed) continue;
          if (record.once) {
            record.removed = true;
            const index = apply(arrayIndexOf, list, [record]);
            if (index !== -1) apply(arraySplice, list, [index, 1]);
          }
          s.passive = record.passive;
          try {
            const callback = record.callback;
            if (typeof callback === "function") apply(callback, this, [event]);
            else if (callback !== null && typeof callback.handleEvent === "function") apply(callback.handleEvent, callback, [event]);
          } catch (error) {
            reportError(error);
          }
          s.passive = false;
          if (s.stopImmediate) break;
        }
      }
    } finally {
      s.dispatching = false;
      s.currentTarget = null;
      s.phase = 0;
      s.stop = false;
      s.stopImmediate = false;
    }
    return !(s.cancelable && s.defaultPrevented);
  }
}
define(EventTarget.prototype, SymbolToStringTag, { value: "EventTarget", configurable: true });
for (const name of ["addEventListener", "removeEventListener", "dispatchEvent"]) {
  const desc = Object.getOwnPropertyDescriptor(EventTarget.prototype, name);
  desc.enumerable = true;
  define(EventTarget.prototype, name, desc);
}

// An exception thrown by a listener is reported, not thrown to the dispatcher (as in
// browsers): here it becomes an unhandled promise rejection, which the sandbox ignores.
const PromiseReject = Promise.reject.bind(Promise);
const reportError = (error) => { PromiseReject(error); };

// -- AbortSignal / AbortController ----------------------------------------------------------
const signals = new WeakMapCtor();  // AbortSignal -> { aborted, reason, algorithms, onabort, dependents }
const signalState = (self) => {
  if (self === null || typeof self !== "object" || !apply(wmHas, signals, [self])) {
    throw new TypeErrorCtor('Value of "this" must be of type AbortSignal');
  }
  return apply(wmGet, signals, [self]);
};
const addAbortAlgorithm = (signal, algorithm) => {
  const state = signalState(signal);
  if (!state.aborted) define(state.algorithms, state.algorithms.length, { value: algorithm, writable: true, enumerable: true, configurable: true });
};
let constructing = false;
const newSignal = () => {
  constructing = true;
  try { return new AbortSignal(); } finally { constructing = false; }
};
const abortSignal = (signal, reason) => {
  const state = signalState(signal);
  if (state.aborted) return;
  state.aborted = true;
  state.reason = reason === undefined ? domException("This operation was aborted", "AbortError") : reason;
  const dependents = [];
  for (let i = 0; i < state.dependents.length; i++) {
    const dep = state.dependents[i];
    const ds = signalState(dep);
    if (!ds.aborted) {
      ds.aborted = true;
      ds.reason = state.reason;
      define(dependents, dependents.length, { value: dep, writable: true, enumerable: true, configurable: true });
    }
  }
  runAbortSteps(signal);
  for (let i = 0; i < dependents.length; i++) runAbortSteps(dependents[i]);
};
const runAbortSteps = (signal) => {
  const state = signalState(signal);
  const algorithms = state.algorithms;
  state.algorithms = [];
  for (let i = 0; i < algorithms.length; i++) {
    try { algorithms[i](); } catch (error) { reportError(error); }
  }
  if (state.timer !== 0) { clearTimer(state.timer); state.timer = 0; }
  apply(EventTarget.prototype.dispatchEvent, signal, [new Event("abort")]);
};
const dispatchEvent = EventTarget.prototype.dispatchEvent;

export class AbortSignal extends EventTarget {
  constructor() {
    if (!constructing) throw new TypeErrorCtor("Illegal constructor");
    super();
    apply(wmSet, signals, [this, { aborted: false, reason: undefined, algorithms: [], onabort: null, dependents: [], timer: 0, onabortListener: undefined }]);
  }

  get aborted() { return signalState(this).aborted; }

  get reason() { return signalState(this).reason; }

  throwIfAborted() {
    const state = signalState(this);
    if (state.aborted) throw state.reason;
  }

  get onabort() { return signalState(this).onabort; }

  set onabort(handler) {
    const state = signalState(this);
    if (state.onabortListener === undefined) {
      state.onabortListener = (event) => {
        const h = state.onabort;
        if (typeof h === "function") apply(h, this, [event]);
      };
      apply(EventTarget.prototype.addEventListener, this, ["abort", state.onabortListener]);
    }
    state.onabort = typeof handler === "function" || (handler !== null && typeof handler === "object") ? handler : null;
  }

  static abort(reason = undefined) {
    const signal = newSignal();
    const state = signalState(signal);
    state.aborted = true;
    state.reason = reason === undefined ? domException("This operation was aborted", "AbortError") : reason;
    return signal;
  }

  static timeout(delay) {
    delay = +delay;
    if (!(delay >= 0 && delay <= Number.MAX_SAFE_INTEGER) || delay !== Math.trunc(delay)) {
      throw new RangeError(`The value of "delay" is out of range. It must be >= 0 && <= ${Number.MAX_SAFE_INTEGER}. Received ${delay}`);
    }
    const signal = newSignal();
    signalState(signal).timer = setTimer(() => {
      signalState(signal).timer = 0;
      abortSignal(signal, domException("The operation was aborted due to timeout", "TimeoutError"));
    }, delay, false, []);
    return signal;
  }

  static any(signals) {
    if (!isArray(signals) && (signals === null || typeof signals !== "object")) {
      throw new TypeErrorCtor('The "signals" argument must be an instance of Array.');
    }
    const list = [];
    for (const s of signals) {
      if (!(s instanceof AbortSignal)) throw new TypeErrorCtor('The "signals" argument must be an instance of AbortSignal.');
      define(list, list.length, { value: s, writable: true, enumerable: true, configurable: true });
    }
    const result = newSignal();
    const rs = signalState(result);
    for (let i = 0; i < list.length; i++) {
      const state = signalState(list[i]);
      if (state.aborted) {
        rs.aborted = true;
        rs.reason = state.reason;
        return result;
      }
    }
    for (let i = 0; i < list.length; i++) {
      const state = signalState(list[i]);
      define(state.dependents, state.dependents.length, { value: result, writable: true, enumerable: true, configurable: true });
    }
    return result;
  }
}
define(AbortSignal.prototype, SymbolToStringTag, { value: "AbortSignal", configurable: true });
for (const name of ["aborted", "reason", "throwIfAborted", "onabort"]) {
  const desc = Object.getOwnPropertyDescriptor(AbortSignal.prototype, name);
  desc.enumerable = true;
  define(AbortSignal.prototype, name, desc);
}

const controllers = new WeakMapCtor();
export class AbortController {
  constructor() {
    apply(wmSet, controllers, [this, newSignal()]);
  }

  get signal() {
    if (this === null || typeof this !== "object" || !apply(wmHas, controllers, [this])) {
      throw new TypeErrorCtor('Value of "this" must be of type AbortController');
    }
    return apply(wmGet, controllers, [this]);
  }

  abort(reason = undefined) {
    abortSignal(this.signal, reason);
  }
}
define(AbortController.prototype, SymbolToStringTag, { value: "AbortController", configurable: true });
for (const name of ["signal", "abort"]) {
  const desc = Object.getOwnPropertyDescriptor(AbortController.prototype, name);
  desc.enumerable = true;
  define(AbortController.prototype, name, desc);
}
