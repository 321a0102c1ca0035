export { LruCache, type LruOptions } from './lru';
export { SingleFlight } from './single-flight';
