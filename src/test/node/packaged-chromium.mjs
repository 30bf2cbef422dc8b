// The headless Chromium that the npm package @sparticuz/chromium ships, for machines without a
// system browser (StatusPageIT installs the package and lets status-page.test.mjs choose it).
// The package holds chrome-headless-shell compressed with brotli, plus the only libraries that it
// links beyond glibc (NSS, NSPR, expat; built for Amazon Linux 2023, so glibc 2.34 or newer) and a
// font. With those on its library and font paths, it needs nothing else from the machine, and a
// pinned version stays on the registry. Debian's chromium .deb has 44 direct dependencies (on
// 2026-12-06, 25 packages to add to this project's Debian 12 machine, without recommends) that apt
// would have to resolve and unpack without root, and each security update removes the previous
// version from the mirrors.
// The package's own executablePath() is not used: it unpacks to fixed names in /tmp (/tmp/chromium,
// /tmp/fonts), which any other user or version of the package on the machine shares, and it sets
// the library path only on AWS. This unpacks into the test's folder under target/ instead.
import { execFileSync } from "node:child_process";
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { brotliDecompressSync, createBrotliDecompress } from "node:zlib";

const PACKAGE = resolve("node_modules/@sparticuz/chromium");

/** Launch options for playwright-core: the unpacked browser and the environment it needs. */
export async function packagedChromium() {
  const version = JSON.parse(readFileSync(join(PACKAGE, "package.json"), "utf8")).version;
  const dir = resolve("chromium-" + version);
  if (!existsSync(join(dir, "chromium"))) await unpack(dir);
  return {
    executablePath: join(dir, "chromium"),
    env: { ...process.env, LD_LIBRARY_PATH: join(dir, "lib"), FONTCONFIG_FILE: join(dir, "fonts.conf") },
  };
}

// Unpacks next to the final folder and renames it into place, so that a run killed halfway leaves
// no folder that looks complete.
async function unpack(dir) {
  const tmp = dir + ".part-" + process.pid;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const bin = join(PACKAGE, "bin");
  // 190 MB unpacked: streamed rather than held in memory
  await pipeline(createReadStream(join(bin, "chromium.br")), createBrotliDecompress(),
    createWriteStream(join(tmp, "chromium"), { mode: 0o755 }));
  for (const tarball of ["al2023.tar.br", "fonts.tar.br"])  // lib/*.so*; fonts/ (Open Sans)
    execFileSync("tar", ["-x", "-C", tmp], { input: brotliDecompressSync(readFileSync(join(bin, tarball))) });
  // The machine's fonts where it has a fontconfig setup (pages then look as in a system browser),
  // and the package's font in any case, so that text renders on a machine with no fonts at all.
  writeFileSync(join(tmp, "fonts.conf"), `<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>${join(dir, "fonts")}</dir>
  <cachedir>${join(dir, "fonts-cache")}</cachedir>
</fontconfig>
`);
  renameSync(tmp, dir);
}
