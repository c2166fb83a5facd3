// `netlab inspect` and the node lookup `cp` and `capture` share: one node of a running lab as
// the state's model says it was set up (image, command, environment, user, mounts, resources)
// next to what the container's files record it was started with and what the kernel has now
// (its process, interfaces with addresses, routes).
import type { LabNode, PortMapping, Resources, VolumeMount, NodeFile } from '../topology/types.js';
import { didYouMean } from '../topology/source.js';
import { containerImage, containerState, startedProcess, type ContainerState } from '../runtime/container.js';
import { Kernel } from './kernel/index.js';
import { knownLabs, LabError, requireRoot } from './labs.js';
import { modelOf, readState } from './state.js';
import { nodeStatus, type InterfaceStatus } from './status.js';

/** A node of a lab that has a state (one line with a did-you-mean otherwise: an unknown lab or
 *  node, exit 1). */
export async function labNode(lab: string, node: string): Promise<LabNode> {
  const st = readState(lab);
  if (!st) {
    const labs = await knownLabs();
    throw new LabError(`lab ${lab} is not up${didYouMean(lab, labs)}${labs.length ? ` (labs: ${labs.join(', ')})` : ' (no labs are up)'}`);
  }
  const model = modelOf(st);
  const n = model.nodes.find((x) => x.name === node);
  if (!n) {
    const names = model.nodes.map((x) => x.name);
    throw new LabError(`lab ${lab} has no node ${node}${didYouMean(node, names)} (nodes: ${names.join(', ') || 'none'})`);
  }
  return n;
}

export interface NodeInspect {
  lab: string;
  node: string;
  image: { reference: string; digest: string | null; exposedPorts: string[]; stopSignal: string | null };
  /** What PID 1 was started with (Entrypoint + Cmd as resolved), null before the start. */
  argv: string[] | null;
  /** The topology's own `command` and `entrypoint` (null: the image's). */
  command: string[] | null;
  entrypoint: string[] | null;
  env: Record<string, string>;
  /** The topology's `user` (null: the image's, else root) and the ids the container runs as. */
  user: { configured: string | null; uid: number; gid: number; groups: number[] };
  workingDir: string;
  mounts: { volumes: VolumeMount[]; files: NodeFile[] };
  ports: PortMapping[];
  resources: Resources;
  privileged: boolean;
  capAdd: string[];
  capDrop: string[];
  netns: string | null;
  networkMode: LabNode['networkMode'];
  state: ContainerState;
  interfaces: InterfaceStatus[];
  routes: { dst: string; via: string | null; dev: string | null }[];
  /** Why the node's namespace could not be read; null when it was. */
  error: string | null;
}

export async function inspectNode(lab: string, node: string): Promise<NodeInspect> {
  requireRoot('inspect');
  const n = await labNode(lab, node);
  const image = containerImage(lab, node);
  const proc = startedProcess(lab, node);
  const kernel = await Kernel.open();
  let ns: Awaited<ReturnType<typeof nodeStatus>>;
  try {
    ns = await nodeStatus(kernel, lab, node, n.netns, new Set(kernel.netnsList()), n);
  } finally {
    kernel.close();
  }
  return {
    lab, node,
    image: { reference: image?.image ?? n.image, digest: image?.digest ?? null, exposedPorts: image?.exposedPorts ?? [], stopSignal: image?.stopSignal ?? null },
    argv: proc?.argv ?? null,
    command: n.command, entrypoint: n.entrypoint ?? null,
    env: proc?.env ?? n.environment,
    user: { configured: n.user, uid: proc?.user?.uid ?? 0, gid: proc?.user?.gid ?? 0, groups: proc?.user?.groups ?? [] },
    workingDir: proc?.cwd ?? n.workingDir ?? '/',
    mounts: { volumes: n.volumes, files: n.files ?? [] },
    ports: n.ports, resources: n.resources, privileged: n.privileged, capAdd: n.capAdd, capDrop: n.capDrop,
    netns: n.netns, networkMode: n.networkMode,
    state: containerState(lab, node),
    interfaces: ns.interfaces, routes: ns.routes,
    error: ns.error ?? (ns.present ? null : `namespace ${n.netns} missing`),
  };
}
