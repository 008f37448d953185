"""Moves trained weights from a TF1 checkpoint into a Keras model, verified.

Usage: python -m migrate COMMAND [--flags]

Commands:
  inspect   list a legacy checkpoint's variables, shapes, bytes and roles
  plan      check a conversion without writing (unmapped, unfilled, shapes, collisions)
  convert   write a TF2 checkpoint holding only the mapped weights (+ manifest.json)
  batch     convert every checkpoint under a directory (resumable, crash-isolated workers)
  verify    run the legacy graph and the restored Keras model, compare outputs
  check     re-hash a converted output against its manifest
  lint      check a mapping table without TensorFlow
  zoo       list the built-in conversions
  demo      build a legacy checkpoint, convert it, verify it (the main job)

Example:
  python -m migrate convert --checkpoint=train/model.ckpt-3 --zoo=resnet_v1_50 --output=converted
"""

from absl import flags

from migrate import cli

flags.adopt_module_key_flags(cli)

if __name__ == "__main__":
    cli.run()
