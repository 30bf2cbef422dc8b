#!/usr/bin/env bash
# ON THE GPU MACHINE: where the server's native memory grows under the soak's load. The server runs
# on the distribution's jemalloc with heap profiling on; 400 pushes under 256 streams; then the
# biggest mappings by size class, the live heap of the first and last profile, and the growth
# between them by allocation site (jeprof --base). jeprof is Debian's (package libjemalloc-dev), a
# perl script the GPU machine lacks: copy it beside this one first.
#   mkdir -p target/memprof && cp /usr/bin/jeprof target/memprof/
#   # through the device tool, carry ["target/rollout-dist.tar.xz", "target/memprof"]:
#   bash bench/memprof.sh
set -u
mkdir -p /tmp/jeprof
export ROLLOUT_MAX_RUNNING_REQUESTS=512
export JEPROF="${JEPROF:-target/memprof/jeprof}"
export MALLOC_CONF=prof:true,lg_prof_sample:20,lg_prof_interval:32,prof_prefix:/tmp/jeprof/p
bash tools/dist/gpu-run.sh bash -c '
top() { python3 - "$ROLLOUT_SERVER_PID" <<PY
import sys
pid=sys.argv[1]; maps=[]; cur=None
for line in open("/proc/%s/smaps" % pid):
    p=line.split()
    if "-" in p[0] and not p[0].endswith(":"):
        a,b=[int(x,16) for x in p[0].split("-")]; cur=[b-a, p[5] if len(p)>5 else "[anon]", 0, p[1]]; maps.append(cur)
    elif p[0]=="Rss:": cur[2]=int(p[1])*1024
maps.sort(key=lambda m:-m[2]); tot=sum(m[2] for m in maps)
print("RSS %.0f MiB in %d mappings; anon mappings by size class:" % (tot/2**20, len(maps)))
cls={}
for m in maps:
    if m[1]=="[anon]":
        k="%d MiB" % (m[0]>>20) if m[0]>=1<<20 else "<1 MiB"; c=cls.setdefault(k,[0,0]); c[0]+=1; c[1]+=m[2]
for k,(n,r) in sorted(cls.items(), key=lambda kv:-kv[1][1])[:12]: print("  %-10s x%5d rss %7.0f MiB" % (k,n,r/2**20))
for m in maps[:12]: print("  %8.0f MiB rss of %8.0f MiB %s %s" % (m[2]/2**20, m[0]/2**20, m[3], m[1]))
PY
}
top
python3 bench/rl_soak.py --cycles 0 --pushes 400 --deadline-s 170 | grep "^pushes\|^streams\|^memory\|SOAK"
top
J=/tmp/rollout-dist/rollout/jre/bin/java
ls /tmp/jeprof | head -3; ls /tmp/jeprof | wc -l
f0=$(ls -tr /tmp/jeprof/p.*.heap | head -1); f1=$(ls -tr /tmp/jeprof/p.*.heap | tail -1)
echo "first $f0 last $f1"
perl "$JEPROF" --text $J $f0 2>/dev/null | head -3
perl "$JEPROF" --text $J $f1 2>/dev/null | head -25
echo "== growth between the first and last dump"
perl "$JEPROF" --text --base=$f0 $J $f1 2>/dev/null | head -30
'
