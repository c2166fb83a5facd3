// Image references: the cases of distribution/reference's own tests (reference_test.go
// TestReferenceParse, normalize_test.go TestValidateReferenceName, TestValidateRemoteName,
// TestParseRepositoryInfo, TestNormalizedSplitHostname, TestParseAnyReference), read through
// Docker's normalisation (ParseNormalizedNamed + TagNameOnly), which is what `docker pull` does.
import { describe, expect, it } from 'vitest';
import { BUILTIN_IMAGES, ImageRefError, parseImageReference } from '../../topology/image-ref.js';
import { NetlabError } from '../../topology/errors.js';

const F64 = 'f'.repeat(64);
const D = 'sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c';

// input -> [registry, repository, tag, digest]
const VALID: [string, [string, string, string | null, string | null]][] = [
  ['alpine', ['docker.io', 'library/alpine', 'latest', null]],
  ['redis:latest', ['docker.io', 'library/redis', 'latest', null]],
  ['docker.io/library/redis:latest', ['docker.io', 'library/redis', 'latest', null]],
  [`redis@${D}`, ['docker.io', 'library/redis', null, D]],
  [`docker.io/library/redis@${D}`, ['docker.io', 'library/redis', null, D]],
  ['dmcgowan/myapp', ['docker.io', 'dmcgowan/myapp', 'latest', null]],
  [`dmcgowan/myapp@${D}`, ['docker.io', 'dmcgowan/myapp', null, D]],
  ['docker.io/mcgowan/myapp:latest', ['docker.io', 'mcgowan/myapp', 'latest', null]],
  // a 63-hex name is a name, only 64 hex is an image ID
  ['dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9', ['docker.io', 'library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9', 'latest', null]],
  ['dbcc1', ['docker.io', 'library/dbcc1', 'latest', null]],
  ['docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a', ['docker.io', 'library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a', 'latest', null]],
  // TestReferenceParse, normalised: one component without '/' stays on Docker Hub
  ['test_com', ['docker.io', 'library/test_com', 'latest', null]],
  ['test.com:tag', ['docker.io', 'library/test.com', 'tag', null]],
  ['test.com:5000', ['docker.io', 'library/test.com', '5000', null]],
  ['test.com/repo:tag', ['test.com', 'repo', 'tag', null]],
  ['test:5000/repo', ['test:5000', 'repo', 'latest', null]],
  ['test:5000/repo:tag', ['test:5000', 'repo', 'tag', null]],
  [`test:5000/repo@sha256:${F64}`, ['test:5000', 'repo', null, `sha256:${F64}`]],
  [`test:5000/repo:tag@sha256:${F64}`, ['test:5000', 'repo', 'tag', `sha256:${F64}`]],
  ['lowercase:Uppercase', ['docker.io', 'library/lowercase', 'Uppercase', null]],
  [`${'a/'.repeat(127)}a:tag-puts-this-over-max`, ['docker.io', `${'a/'.repeat(127)}a`, 'tag-puts-this-over-max', null]],
  ['sub-dom1.foo.com/bar/baz/quux', ['sub-dom1.foo.com', 'bar/baz/quux', 'latest', null]],
  ['sub-dom1.foo.com/bar/baz/quux:some-long-tag', ['sub-dom1.foo.com', 'bar/baz/quux', 'some-long-tag', null]],
  ['b.gcr.io/test.example.com/my-app:test.example.com', ['b.gcr.io', 'test.example.com/my-app', 'test.example.com', null]],
  ['xn--n3h.com/myimage:xn--n3h.com', ['xn--n3h.com', 'myimage', 'xn--n3h.com', null]],
  [`xn--7o8h.com/myimage:xn--7o8h.com@sha256:${F64}`, ['xn--7o8h.com', 'myimage', 'xn--7o8h.com', `sha256:${F64}`]],
  ['foo_bar.com:8080', ['docker.io', 'library/foo_bar.com', '8080', null]],
  ['foo/foo_bar.com:8080', ['docker.io', 'foo/foo_bar.com', '8080', null]],
  ['192.168.1.1', ['docker.io', 'library/192.168.1.1', 'latest', null]],
  ['192.168.1.1:5000', ['docker.io', 'library/192.168.1.1', '5000', null]],
  ['192.168.1.1/repo', ['192.168.1.1', 'repo', 'latest', null]],
  ['192.168.1.1:5000/repo:5050', ['192.168.1.1:5000', 'repo', '5050', null]],
  ['[2001:db8::1]/repo', ['[2001:db8::1]', 'repo', 'latest', null]],
  ['[2001:db8:1:2:3:4:5:6]/repo:tag', ['[2001:db8:1:2:3:4:5:6]', 'repo', 'tag', null]],
  [`[2001:db8::1]:5000/repo:tag@sha256:${F64}`, ['[2001:db8::1]:5000', 'repo', 'tag', `sha256:${F64}`]],
  ['[2001:db8::]:5000/repo', ['[2001:db8::]:5000', 'repo', 'latest', null]],
  ['[::1]:5000/repo', ['[::1]:5000', 'repo', 'latest', null]],
  [`example.com/${'a'.repeat(255)}:tag`, ['example.com', 'a'.repeat(255), 'tag', null]],
  // TestValidateReferenceName / TestParseRepositoryInfo
  ['localhost/library/debian', ['localhost', 'library/debian', 'latest', null]],
  ['localhost/debian', ['localhost', 'debian', 'latest', null]],
  ['LOCALDOMAIN/debian', ['LOCALDOMAIN', 'debian', 'latest', null]],
  ['Docker/docker', ['Docker', 'docker', 'latest', null]],
  ['index.docker.io/docker/docker', ['docker.io', 'docker/docker', 'latest', null]],
  ['index.docker.io/debian', ['docker.io', 'library/debian', 'latest', null]],
  ['docker.io/debian', ['docker.io', 'library/debian', 'latest', null]],
  ['127.0.0.1:5000/library/debian', ['127.0.0.1:5000', 'library/debian', 'latest', null]],
  ['127.0.0.1:5000/debian', ['127.0.0.1:5000', 'debian', 'latest', null]],
  ['192.168.0.1:80', ['docker.io', 'library/192.168.0.1', '80', null]],
  ['192.168.0.1:8/debian', ['192.168.0.1:8', 'debian', 'latest', null]],
  ['[fc00:1:2:3:4:5:6:7]:5000/library/debian', ['[fc00:1:2:3:4:5:6:7]:5000', 'library/debian', 'latest', null]],
  ['thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev', ['docker.io', 'library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev', 'latest', null]],
  ['docker---rules/docker', ['docker.io', 'docker---rules/docker', 'latest', null]],
  ['dock__er/docker', ['docker.io', 'dock__er/docker', 'latest', null]],
  ['d/docker', ['docker.io', 'd/docker', 'latest', null]],
  ['jess/t', ['docker.io', 'jess/t', 'latest', null]],
  ['library/foo/bar', ['docker.io', 'library/foo/bar', 'latest', null]],
  ['other/library', ['docker.io', 'other/library', 'latest', null]],
  ['ubuntu-12.04-base', ['docker.io', 'library/ubuntu-12.04-base', 'latest', null]],
  ['example.com:8000/private/moonbase', ['example.com:8000', 'private/moonbase', 'latest', null]],
  ['test-com:8080/foo', ['test-com:8080', 'foo', 'latest', null]],
  ['xn--n3h.com:18080/foo', ['xn--n3h.com:18080', 'foo', 'latest', null]],
  ['docker.io/library/foo/bar', ['docker.io', 'library/foo/bar', 'latest', null]],
];

// input -> what the message must say
const INVALID: [string, RegExp][] = [
  ['', /empty/],
  [':justtag', /repository name ""|missing|not valid/],
  [`@sha256:${F64}`, /not valid|missing/],
  ['repo@sha256:ffffffffffffffffffffffffffffffffff', /sha256: and 64 lowercase/],
  [`validname@invaliddigest:${F64}`, /unsupported algorithm/],
  [`validname@sha512:${'f'.repeat(128)}`, /unsupported algorithm/],
  [`validname@sha256:${'F'.repeat(64)}`, /64 lowercase/],
  ['Uppercase:tag', /must be lowercase/],
  ['test:5000/Uppercase/lowercase:tag', /must be lowercase/],
  ['docker/Docker', /must be lowercase/],
  ['docker.io/docker/Docker', /must be lowercase/],
  [`domain/${'a'.repeat(256)}:tag`, /not be more than 255/],
  ['this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker', /not be more than 255/],
  ['aa/asdf$$^/aa', /not valid/],
  ['[2001:db8::1]', /not valid/],
  ['[2001:db8::1]:5000', /not valid/],
  ['[2001:db8::1]:tag', /not valid/],
  ['[fe80::1%eth0]:5000/repo', /registry "\[fe80::1%eth0\]:5000"/],
  ['[2001:db8:3:4::192.0.2.33]:5000/debian', /registry/],
  ['fc00::1:5000/debian', /registry "fc00::1:5000"/],
  ['https://github.com/docker/docker', /registry "https:"/],
  ['-docker', /not valid/],
  ['-docker/docker', /not valid/],
  ['-docker.io/docker/docker', /registry "-docker.io"/],
  ['docker-/docker', /not valid/],
  ['-docker-/docker', /not valid/],
  ['docker///docker', /not valid/],
  ['docker.io/docker///docker', /not valid/],
  ['____/____', /not valid/],
  ['_docker/_docker', /not valid/],
  ['dock..er/docker', /registry "dock..er"/],
  ['dock..er/docker', /registry "dock..er"/],
  ['dock..er/docker', /registry "dock..er"/],
  ['docker/', /missing/],
  ['1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a', /image ID/],
  ['alpine:-foo', /tag "-foo"/],
  [`alpine:${'t'.repeat(129)}`, /tag/],
  ['alpine:a:b', /tag "a:b"/],
  ['alpine@sha256:abc@sha256:def', /digest/],
  ['alpine ', /not valid/],
  // Docker takes "foo_bar.com" for a domain (it has a '.') and then matches the whole name as a
  // path with an empty domain; a domain that is no host name is refused here instead.
  ['foo_bar.com/x', /registry "foo_bar.com"/],
];

describe('parseImageReference', () => {
  it.each(VALID)('%s', (input, [registry, repository, tag, digest]) => {
    const r = parseImageReference(input);
    expect({ registry: r.registry, repository: r.repository, tag: r.tag, digest: r.digest }).toEqual({ registry, repository, tag, digest });
    expect(r.canonical).toBe(`${registry}/${repository}${tag !== null ? `:${tag}` : ''}${digest !== null ? `@${digest}` : ''}`);
    // The canonical form reads back as itself.
    expect(parseImageReference(r.canonical)).toEqual(r);
  });

  it.each(INVALID)('refuses %j', (input, why) => {
    let err: unknown;
    try { parseImageReference(input); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ImageRefError);
    expect(err).toBeInstanceOf(NetlabError);
    const msg = (err as Error).message;
    expect(msg).toMatch(why);
    expect(msg.startsWith(`invalid image reference ${JSON.stringify(input)}: `)).toBe(true);
    expect(msg).not.toContain('\n');
  });

  it('canonical forms of the issue examples', () => {
    expect(parseImageReference('alpine').canonical).toBe('docker.io/library/alpine:latest');
    expect(parseImageReference('user/app:1').canonical).toBe('docker.io/user/app:1');
    expect(parseImageReference('host:5000/path/name:tag').canonical).toBe('host:5000/path/name:tag');
    expect(parseImageReference(`busybox:latest@${D}`).canonical).toBe(`docker.io/library/busybox:latest@${D}`);
    expect(parseImageReference(`127.0.0.1:5000/x/y@${D}`).canonical).toBe(`127.0.0.1:5000/x/y@${D}`);
  });

  it('busybox and host are netlab built-ins', () => {
    expect(BUILTIN_IMAGES).toEqual(['busybox', 'host']);
  });

  it('long hostile input fails fast', () => {
    const t0 = Date.now();
    expect(() => parseImageReference(`${'a-'.repeat(50_000)}!`)).toThrow(ImageRefError);
    expect(() => parseImageReference(`x.io/${'a'.repeat(200_000)}`)).toThrow(/255/);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});
