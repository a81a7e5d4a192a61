"""Writers for what game engines read: glTF binary with ARKit morph targets, OBJ, Live Link CSV."""
