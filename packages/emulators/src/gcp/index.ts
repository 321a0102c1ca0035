export { startGcpKmsEmulator, type GcpKmsEmulator, type GcpKmsEmulatorOptions } from './emulator';
export type { InjectedStatus } from './service';
