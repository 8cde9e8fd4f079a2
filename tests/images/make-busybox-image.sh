#!/bin/sh
# Builds Berth's test image from Debian's busybox-static as a `docker save` tarball that
# `berth image load` (berth-runtime's ImageStore::load) accepts. No Docker needed.
#
#   tests/images/make-busybox-image.sh OUT.tar [TAG]     (TAG defaults to busybox:latest)
#
# The image: /bin/busybox plus applet symlinks, /etc/passwd and /etc/group with root, app
# (1000, also in wheel) and nobody, /tmp; Env PATH=/bin; Cmd ["sh"].
set -eu
out=${1:?usage: make-busybox-image.sh OUT.tar [TAG]}
tag=${2:-busybox:latest}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "missing $busybox: apt-get install -y busybox-static" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/home/app" "$root/proc" "$root/dev" "$root/sys"
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
cp "$busybox" "$root/bin/busybox"
chmod 755 "$root/bin/busybox"
for a in sh ash echo sleep cat ls env pwd id dd head tail tr true false kill hostname printf mkdir \
         touch wc ps test yes grep sed awk date rm cp mv ln wget nc ping uname seq sort uniq; do
  ln -s busybox "$root/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\napp:x:1000:\nwheel:x:10:app\nnogroup:x:65534:\n' > "$root/etc/group"

img=$work/image
mkdir -p "$img/layer"
# Reproducible layer: sorted names, fixed owner and time.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$img/layer/layer.tar" .
diff_id=$(sha256sum "$img/layer/layer.tar" | cut -d' ' -f1)
config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sh\"],\"WorkingDir\":\"/\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diff_id\"]}}"
printf '%s' "$config" > "$img/config.json"
config_id=$(sha256sum "$img/config.json" | cut -d' ' -f1)
mv "$img/config.json" "$img/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer/layer.tar"]}]' "$config_id" "$tag" > "$img/manifest.json"
tar --owner=0 --group=0 --numeric-owner -C "$img" -cf "$out" manifest.json "$config_id.json" layer
echo "$out: $tag (config sha256:$config_id)"
