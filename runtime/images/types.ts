// What an image gives a container, whatever provides it (the built-in busybox, the host's own
// filesystem, later OCI images): how its root filesystem is put together, and the image's
// configuration (OCI's Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts, StopSignal). The
// runtime turns an ImageSpec into mount steps for the shim; it never asks which image it is.
import { NetlabError } from '../../topology/errors.js';

/** One step of building a container's root, done by the shim in order before /proc and /dev. */
export type RootMount =
  /** The root is an overlay of `layers` (lowerdirs, top first) under the container's private
   *  writable layer. */
  | { kind: 'overlay-root'; layers: string[] }
  /** The root is DIR bound read-only (the host image), nothing writable but what follows. */
  | { kind: 'bind-root'; source: string }
  /** A private tmpfs at PATH (mode octal). */
  | { kind: 'tmpfs'; target: string; mode: string }
  /** PATH overlaid with the container's private writable layer on top of the same path of the
   *  source tree (the host image's /etc). */
  | { kind: 'overlay-dir'; target: string }
  /** A file or directory bound read-only at PATH (skipped when the source does not exist). */
  | { kind: 'bind-ro'; source: string; target: string };

export interface ImageConfig {
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
  workingDir: string | null;
  user: string | null;
  exposedPorts: string[];
  stopSignal: string | null;
}

export interface ImageSpec {
  /** The reference as the topology wrote it. */
  ref: string;
  /** The manifest digest of an OCI image (null for netlab's own images). */
  digest: string | null;
  root: RootMount[];
  /** Where the container's generated /etc files go inside its writable layer ('etc' for an
   *  overlay root, '' when the writable layer is mounted on /etc itself). */
  etcInUpper: string;
  config: ImageConfig;
}

export class ImageError extends NetlabError {}
