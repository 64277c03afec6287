"""Finding the images and videos a user points the demo at."""
import os

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.pgm', '.ppm')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg')


def is_video(path):
    return path.lower().endswith(VIDEO_EXTENSIONS)


def list_inputs(paths):
    """Expand folders to their image and video files (sorted); keep files as given."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path)
                           if n.lower().endswith(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS))
            found.extend(os.path.join(path, n) for n in names)
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise ValueError('%s: no such file or folder' % path)
    return found
