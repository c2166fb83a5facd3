// Builds real OCI images for tests without Docker: umoci (Debian's package, a test tool only)
// edits an OCI image layout, one layer per step; the host's static busybox is the content. The
// images are the test peers' own (a registry gets them through skopeo), never netlab's output.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p)) ?? '/bin/busybox';

export interface ImageConfigEdit {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  exposedPorts?: string[];
  stopSignal?: string;
}

function run(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** An OCI image layout directory edited with umoci: `dir/oci` holds the layout, tags name images. */
export class OciLayout {
  readonly layout: string;
  private n = 0;
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    this.layout = path.join(dir, 'oci');
    if (!fs.existsSync(path.join(this.layout, 'index.json'))) run('umoci', ['init', '--layout', this.layout]);
  }

  /** `oci:TAG` for skopeo and umoci. */
  ref(tag: string): string {
    return `${this.layout}:${tag}`;
  }

  /** An empty image (no layers) under TAG. */
  newImage(tag: string): this {
    run('umoci', ['new', '--image', this.ref(tag)]);
    return this;
  }

  /** Copies TAG to NEWTAG (same manifest), to build variants on a shared base. */
  copy(tag: string, newTag: string): this {
    run('umoci', ['tag', '--image', this.ref(tag), newTag]);
    return this;
  }

  /** Adds one layer to TAG: the image is unpacked, `edit` changes the root filesystem, and umoci
   *  repacks the difference (a removed file becomes a `.wh.` whiteout, a replaced directory an
   *  opaque one). */
  layer(tag: string, edit: (rootfs: string) => void): this {
    const bundle = path.join(this.dir, `bundle-${++this.n}`);
    run('umoci', ['unpack', '--image', this.ref(tag), bundle]);
    try {
      edit(path.join(bundle, 'rootfs'));
      run('umoci', ['repack', '--image', this.ref(tag), bundle]);
    } finally {
      fs.rmSync(bundle, { recursive: true, force: true });
    }
    return this;
  }

  /** Adds a layer straight from a tar file (hostile layers for the unpacker's tests). */
  rawLayer(tag: string, tarFile: string): this {
    run('umoci', ['raw', 'add-layer', '--image', this.ref(tag), tarFile]);
    return this;
  }

  config(tag: string, c: ImageConfigEdit): this {
    const args = ['config', '--image', this.ref(tag)];
    if (c.entrypoint) for (const a of c.entrypoint) args.push('--config.entrypoint', a);
    if (c.cmd) for (const a of c.cmd) args.push('--config.cmd', a);
    for (const e of c.env ?? []) args.push('--config.env', e);
    if (c.workingDir) args.push('--config.workingdir', c.workingDir);
    if (c.user) args.push('--config.user', c.user);
    for (const p of c.exposedPorts ?? []) args.push('--config.exposedports', p);
    if (c.stopSignal) args.push('--config.stopsignal', c.stopSignal);
    run('umoci', args);
    return this;
  }

  /** The manifest digest of TAG, as the layout's index names it. */
  digest(tag: string): string {
    const index = JSON.parse(fs.readFileSync(path.join(this.layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
    const m = index.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag);
    if (!m) throw new Error(`no tag ${tag} in ${this.layout}`);
    return m.digest;
  }

  /** umoci's own unpacking of TAG (the differential oracle): returns the bundle directory. */
  unpack(tag: string, bundle: string): string {
    run('umoci', ['unpack', '--image', this.ref(tag), bundle]);
    return bundle;
  }
}

/** Fills ROOTFS with the host's static busybox, every applet linked in, and account files that
 *  name a non-root user (`app`, 1000:1000) for the User tests. */
export function fillBusybox(rootfs: string): void {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'tmp', 'root', 'home/app', 'www']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.chmodSync(path.join(rootfs, 'tmp'), 0o1777);
  fs.copyFileSync(BUSYBOX, path.join(rootfs, 'bin/busybox'));
  fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
  for (const a of run(BUSYBOX, ['--list-full']).split('\n').filter(Boolean)) {
    const t = path.join(rootfs, a);
    if (a === 'bin/busybox' || fs.existsSync(t)) continue;
    fs.mkdirSync(path.dirname(t), { recursive: true });
    fs.symlinkSync('/bin/busybox', t);
  }
  fs.writeFileSync(path.join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  fs.writeFileSync(path.join(rootfs, 'etc/group'), 'root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n');
  fs.chownSync(path.join(rootfs, 'home/app'), 1000, 1000);
  fs.writeFileSync(path.join(rootfs, 'www/index.html'), 'hello from an OCI image\n');
}

/** The standard test images in one layout (each a tag):
 *  - `base`: busybox, one layer, Cmd httpd on port 80 serving /www, ExposedPorts 80/tcp;
 *  - `multi`: base + a second and third layer (files added, one overwritten);
 *  - `whiteout`: base + a layer removing /www/index.html and /usr/bin/wget (`.wh.` entries);
 *  - `opaque`: base + a layer replacing /www with a new directory (`.wh..wh..opq`);
 *  - `user`: base with User app and WorkingDir /home/app, Env and Entrypoint set. */
export function buildTestImages(dir: string): OciLayout {
  const o = new OciLayout(dir);
  o.newImage('base').layer('base', fillBusybox).config('base', {
    cmd: ['httpd', '-f', '-p', '80', '-h', '/www'], exposedPorts: ['80/tcp'], env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
  });
  o.copy('base', 'multi')
    .layer('multi', (r) => { fs.mkdirSync(path.join(r, 'opt/two'), { recursive: true }); fs.writeFileSync(path.join(r, 'opt/two/file'), 'layer two\n'); })
    .layer('multi', (r) => { fs.writeFileSync(path.join(r, 'opt/two/file'), 'layer three\n'); fs.writeFileSync(path.join(r, 'opt/three'), '3\n'); });
  o.copy('base', 'whiteout').layer('whiteout', (r) => { fs.rmSync(path.join(r, 'www/index.html')); fs.rmSync(path.join(r, 'usr/bin/wget')); });
  // umoci writes a removed-and-recreated directory as single whiteouts: the opaque marker comes
  // from a layer tar written by hand (GNU tar), as other image builders emit it.
  const opq = path.join(dir, 'opaque-layer');
  fs.mkdirSync(path.join(opq, 'www'), { recursive: true });
  fs.writeFileSync(path.join(opq, 'www/.wh..wh..opq'), '');
  fs.writeFileSync(path.join(opq, 'www/new.html'), 'only this\n');
  run('tar', ['-cf', `${opq}.tar`, '--owner=0', '--group=0', '-C', opq, 'www']);
  o.copy('base', 'opaque').rawLayer('opaque', `${opq}.tar`);
  fs.rmSync(opq, { recursive: true });
  fs.rmSync(`${opq}.tar`);
  o.copy('base', 'user').config('user', {
    user: 'app', workingDir: '/home/app', env: ['GREETING=hi'], entrypoint: ['/bin/sh', '-c'], cmd: ['sleep 1000'], stopSignal: 'SIGUSR1',
  });
  return o;
}
