"""The topic files shipped with avs; a package only so that the installed toolkit can locate them."""
