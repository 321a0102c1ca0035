export * from './faults';
export * from './tcp-front';
export * from './control';
// Each cloud emulator adds one export line below (aws, gcp, azure).
export * from './azure';
export * from './gcp';
export * from './aws';
