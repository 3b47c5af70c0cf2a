// performance.now() / timeOrigin: deno_core's monotonic clock (ms since the runtime
// started), coarsened to 100 microseconds like browsers' cross-origin-isolated minimum,
// so it cannot serve as a fine timer for side channels.
import { dateNow, define, defineProperties, mathFloor, monotonicNow, SymbolToStringTag, TypeErrorCtor } from "./intrinsics.js";

let last = 0;
let origin = 0;
export const performanceNow = () => {
  const t = mathFloor(monotonicNow() * 10) / 10;
  if (t > last) last = t;
  return last;
};
export const resetPerformance = () => {
  last = 0;
  origin = mathFloor((dateNow() - monotonicNow()) * 10) / 10;
};

export class Performance {
  constructor() { throw new TypeErrorCtor("Illegal constructor"); }
}
const performanceObject = Object.create(Performance.prototype);
defineProperties(Performance.prototype, {
  [SymbolToStringTag]: { value: "Performance", configurable: true },
  now: { value: function now() { return performanceNow(); }, writable: true, enumerable: true, configurable: true },
  timeOrigin: { get() { return origin; }, enumerable: true, configurable: true },
  toJSON: { value: function toJSON() { return { timeOrigin: origin }; }, writable: true, enumerable: true, configurable: true },
});
export const performance = performanceObject;
