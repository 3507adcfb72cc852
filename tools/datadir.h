/* tools/datadir.h - where the command line finds reel's data folders (presets/, the default
 * model under presets/models/shapes) when run from a build tree, installed, or elsewhere. */
#ifndef RL_TOOLS_DATADIR_H
#define RL_TOOLS_DATADIR_H

#include <stddef.h>

/* The folder <rel> next to the executable's source tree (build/tools/reel -> <root>/<rel>), in
 * the installed data folder (<prefix>/share/reel/<rel>), else <rel> relative to the current
 * folder: the first that is a folder, written into buf (cap bytes). Returns buf. */
const char *rl_data_path(const char *rel, char *buf, size_t cap);
/* 1 when path names a folder (following links). */
int rl_is_dir(const char *path);

#endif
