#!/bin/sh
# Checks the layering of docs/design.md ("Layers"): the layers built on the
# public API (nn, optim, data, io, train, dist) and the examples include only
# headers from include/nabla (plus system headers), and kernels never reach
# up into ops or graphs. Prints every offending line; exits 1 if any.
cd "${1:-$(dirname "$0")/..}" || exit 2
status=0
report() {
    echo "layering: $1"
    status=1
}

# Quoted includes in the public-API layers must name nabla/ headers, or a
# header of the same directory (examples share example_util.h, say); the
# examples also reach their own libraries by a path under examples/
# ("plot/plot.h"), which are held to the same rule.
offending=$(for f in src/nn/*.c src/optim/*.c src/data/*.c src/io/*.c src/train/*.c \
         src/dist/*.c src/nn/*.h src/optim/*.h src/data/*.h src/io/*.h \
         src/train/*.h src/dist/*.h \
         examples/*.c examples/*.h examples/*/*.c examples/*/*.h; do
    [ -e "$f" ] || continue
    dir=$(dirname "$f")
    grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
    while IFS= read -r line; do
        inc=$(printf '%s\n' "$line" | sed 's/.*include[[:space:]]*"\([^"]*\)".*/\1/')
        case "$inc" in
            nabla/*) ;;
            */*) case "$f" in
                     examples/*) case "$inc" in
                                     *..*) echo "$f:$line" ;;
                                     *) [ -e "examples/$inc" ] || echo "$f:$line" ;;
                                 esac ;;
                     *) echo "$f:$line" ;;
                 esac ;;
            *) [ -e "$dir/$inc" ] || echo "$f:$line" ;;
        esac
    done
done)
if [ -n "$offending" ]; then
    report "these include files from outside include/nabla:"
    printf '%s\n' "$offending"
fi

# Kernels know nothing of graphs, nodes, ops or the diagnostics on top.
if grep -n '#[[:space:]]*include[[:space:]]*"\(\.\./\)*\(ops\|graph\|diag\|core/internal\)' \
        src/kernels/*.c src/kernels/*.h 2>/dev/null; then
    report "src/kernels includes graph or op headers"
fi
# The core is the bottom layer: it owns the thread policy that the
# kernels use, and includes nothing of theirs.
if grep -n '#[[:space:]]*include[[:space:]]*"\(\.\./\)*kernels/' \
        src/core/*.c src/core/*.h 2>/dev/null; then
    report "src/core includes kernel headers"
fi
[ $status -eq 0 ] && echo "layering: ok"
exit $status
