/* keeps the shapes library non-empty while its sources are written */
typedef int rl_shapes_empty_unit;
