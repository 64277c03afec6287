"""Drawing alignment results on an image."""
import cv2
import numpy as np

from data.landmarks import CONTOURS

BOX_COLOUR = (0, 255, 0)
LINE_COLOUR = (255, 255, 255)
POINT_COLOUR = (0, 0, 255)
DETECTOR_POINT_COLOUR = (255, 255, 0)


def draw_faces(image_bgr, faces):
    """A copy of the image with each face's box, score, landmark contours and points, and the
    detector's five points (cyan crosses) when the face has them."""
    canvas = image_bgr.copy()
    # Line widths follow the image size so results stay visible on large photos.
    thickness = max(1, int(round(max(canvas.shape[:2]) / 400)))
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box[:4])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOUR, thickness)
        cv2.putText(canvas, '%.2f' % face.score, (x1, max(y1 - 4, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, BOX_COLOUR, thickness)
        points = np.round(face.landmarks).astype(np.int32)
        for first, last, closed in CONTOURS:
            cv2.polylines(canvas, [points[first:last + 1].reshape(-1, 1, 2)], closed,
                          LINE_COLOUR, thickness, cv2.LINE_AA)
        for x, y in points:
            cv2.circle(canvas, (int(x), int(y)), thickness + 1, POINT_COLOUR, -1, cv2.LINE_AA)
        if face.detector_points is not None:
            for x, y in np.round(face.detector_points).astype(np.int32):
                cv2.drawMarker(canvas, (int(x), int(y)), DETECTOR_POINT_COLOUR,
                               cv2.MARKER_CROSS, 4 * (thickness + 1), thickness)
    return canvas
