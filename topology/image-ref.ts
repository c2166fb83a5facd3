// Image references as Docker reads them: `[domain/]path[:tag][@digest]`, the grammar of
// distribution/reference (regexp.go) with Docker's normalisation (normalize.go: docker.io by
// default, `library/` for single-component Docker Hub names, `latest` when neither tag nor digest).
// It lives in topology because a node's `image` is validated with the rest of the file; the
// runtime and the registry client take the parsed reference from here.
import { NetlabError } from './errors.js';

export interface ImageReference {
  /** 'docker.io' or host[:port] as written ('localhost:5000', '[::1]:5000'). */
  registry: string;
  /** The path inside the registry: 'library/alpine'. */
  repository: string;
  tag: string | null;
  /** 'sha256:<64 hex>'. */
  digest: string | null;
  /** 'docker.io/library/alpine:latest', 'host:5000/x/y@sha256:..', or 'r/x:t@sha256:..' when both
   *  were given (the digest decides what is pulled; the tag is kept for display). */
  canonical: string;
}

export class ImageRefError extends NetlabError {}

/** Node images that keep netlab's own meaning (the local busybox image and the host's root);
 *  they are never parsed as references. */
export const BUILTIN_IMAGES: readonly string[] = ['busybox', 'host'];

const DOCKER_HUB = 'docker.io';
const LEGACY_DOCKER_HUB = 'index.docker.io';
const NAME_MAX = 255;

// The productions of distribution/reference/regexp.go, kept as close to the Go source as JS allows
// so the two can be compared line by line.
const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const remoteName = `${pathComponent}(?:/${pathComponent})*`;
const domainNameComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainName = `${domainNameComponent}(?:\\.${domainNameComponent})*`;
const ipv6address = '\\[(?:[a-fA-F0-9:]+)\\]';
const domainAndPort = `(?:${domainName}|${ipv6address})(?::[0-9]+)?`;
const tagPat = '[\\w][\\w.-]{0,127}';
const digestPat = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';

const DOMAIN_RE = new RegExp(`^${domainAndPort}$`);
const PATH_RE = new RegExp(`^${remoteName}$`);
const TAG_RE = new RegExp(`^${tagPat}$`);
const DIGEST_RE = new RegExp(`^${digestPat}$`);
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

function fail(s: string, why: string): never {
  throw new ImageRefError(`invalid image reference "${s}": ${why}`);
}

/** Docker's splitDockerDomain: the first component is a registry when it contains '.' or ':', is
 *  'localhost', or has uppercase letters (a repository path cannot); otherwise the name is on
 *  Docker Hub. */
function splitDomain(s: string): { domain: string; remainder: string } {
  const slash = s.indexOf('/');
  if (slash < 0) return { domain: DOCKER_HUB, remainder: `library/${s}` };
  const first = s.slice(0, slash);
  const rest = s.slice(slash + 1);
  let domain: string;
  let remainder: string;
  if (first === 'localhost' || /[.:]/.test(first) || first.toLowerCase() !== first) {
    domain = first === LEGACY_DOCKER_HUB ? DOCKER_HUB : first;
    remainder = rest;
  } else {
    domain = DOCKER_HUB;
    remainder = s;
  }
  if (domain === DOCKER_HUB && !remainder.includes('/')) remainder = `library/${remainder}`;
  return { domain, remainder };
}

export function parseImageReference(s: string): ImageReference {
  if (s === '') fail(s, 'it is empty');
  // A bare 64-hex string is an image ID to Docker, never a repository name.
  if (IDENTIFIER_RE.test(s)) fail(s, 'a 64-character hexadecimal string is an image ID, not a repository name');
  const { domain, remainder } = splitDomain(s);

  // Neither a path nor a tag may contain '@', and the domain is gone: the first '@' starts the
  // digest and the first ':' before it starts the tag.
  const at = remainder.indexOf('@');
  const nameTag = at < 0 ? remainder : remainder.slice(0, at);
  const digest = at < 0 ? null : remainder.slice(at + 1);
  const colon = nameTag.indexOf(':');
  const repository = colon < 0 ? nameTag : nameTag.slice(0, colon);
  const tag = colon < 0 ? null : nameTag.slice(colon + 1);

  if (!DOMAIN_RE.test(domain)) fail(s, `registry "${domain}" is not a host name or [IPv6] address with an optional :port`);
  if (repository.toLowerCase() !== repository) fail(s, `repository name "${repository}" must be lowercase`);
  if (repository === '' || repository.endsWith('/')) fail(s, 'the repository name is missing');
  // Before the pattern, which backtracks quadratically on long input.
  if (repository.length > NAME_MAX) fail(s, `repository name must not be more than ${NAME_MAX} characters`);
  if (!PATH_RE.test(repository)) {
    fail(s, `repository name "${repository}" is not valid: components of lowercase letters and digits, separated by "/" and within a component by one ".", one or two "_" or any number of "-"`);
  }
  if (tag !== null && !TAG_RE.test(tag)) fail(s, `tag "${tag}" is not valid: up to 128 letters, digits, "_", "." or "-", not starting with "." or "-"`);
  if (digest !== null) {
    if (!DIGEST_RE.test(digest)) fail(s, `digest "${digest}" is not of the form ALGORITHM:HEX`);
    if (!digest.startsWith('sha256:')) fail(s, `digest "${digest}" uses an unsupported algorithm (only sha256)`);
    if (!SHA256_RE.test(digest)) fail(s, `digest "${digest}" must be sha256: and 64 lowercase hexadecimal digits`);
  }

  const finalTag = tag ?? (digest === null ? 'latest' : null);
  const canonical = `${domain}/${repository}${finalTag !== null ? `:${finalTag}` : ''}${digest !== null ? `@${digest}` : ''}`;
  return { registry: domain, repository, tag: finalTag, digest, canonical };
}
