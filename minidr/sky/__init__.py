"""Sky geometry: angles, coordinates, HEALPix, regions."""
