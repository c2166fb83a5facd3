// Coexistence with the host's iptables filter, Docker's above all. Debian's docker.io sets the
// FORWARD policy to DROP and loads br_netfilter, so every lab packet (bridged ones too) meets
// that policy and dies there, whatever the lab's own nft table says: an accept in one base
// chain does not overrule a drop in another. As containerlab does, a lab gets two accept rules
// for its interfaces (`-i nl<id>+`, `-o nl<id>+`) in DOCKER-USER, or at the top of FORWARD when
// no Docker chain exists but the policy is DROP, each tagged with the comment `netlab lab
// <name>`; they are found again by that comment, so removal needs no state. Nothing is done
// when iptables is not installed. The text comes from firewall.ts, the running from kernel/iptables.ts.
import { iptAcceptInput, iptComment, iptRemoveInput, isNetlabComment } from './firewall.js';
import { iptablesRestore, iptablesSave } from './kernel/index.js';

/** Adds the lab's accept rules where the filter table would drop its traffic; returns the
 *  chain used, or null when nothing needed them (no iptables, no Docker, policy ACCEPT). */
export function acceptLab(lab: string): string | null {
  const save = iptablesSave('filter');
  if (save === null) return null;
  const r = iptAcceptInput(save, lab);
  if (r === null) return null;
  iptablesRestore(r.input);
  return r.chain;
}

/** Removes the rules netlab added for one lab (`lab`), or for every lab (null); returns how
 *  many it removed. */
export function removeLabRules(lab: string | null): number {
  const save = iptablesSave('filter');
  if (save === null) return 0;
  const match = lab === null ? isNetlabComment : (c: string) => c === iptComment(lab);
  const input = iptRemoveInput(save, match);
  if (input === null) return 0;
  iptablesRestore(input);
  return input.split('\n').filter((l) => l.startsWith('-D ')).length;
}
