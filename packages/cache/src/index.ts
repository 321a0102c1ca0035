export { LruCache, type LruOptions } from './lru';
export { SingleFlight, keyMaterialFlight } from './single-flight';
