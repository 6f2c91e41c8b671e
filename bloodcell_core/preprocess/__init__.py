"""From a decoded RGB image to model input: cell localisation and cropping."""
