//! Plain image and geometry types shared by the pipeline stages.

use serde::Serialize;

/// An 8-bit RGB image, row-major, interleaved `r, g, b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width * height * 3` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// A black image.
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0; width * height * 3],
        }
    }

    /// Wraps interleaved RGB bytes; `None` if the length is wrong.
    pub fn from_raw(width: usize, height: usize, data: Vec<u8>) -> Option<Self> {
        (width.checked_mul(height)?.checked_mul(3)? == data.len()).then_some(Self {
            width,
            height,
            data,
        })
    }

    /// The pixel at column `x`, row `y` (caller keeps them in range).
    #[inline]
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets the pixel at column `x`, row `y`.
    #[inline]
    pub fn put(&mut self, x: usize, y: usize, p: [u8; 3]) {
        let i = (y * self.width + x) * 3;
        self.data[i..i + 3].copy_from_slice(&p);
    }
}

/// An inclusive pixel rectangle, as dlib's `rectangle` (right and bottom are inside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rect {
    /// Left column.
    pub left: i64,
    /// Top row.
    pub top: i64,
    /// Right column (inclusive).
    pub right: i64,
    /// Bottom row (inclusive).
    pub bottom: i64,
}

impl Rect {
    /// Width in pixels (`right - left + 1`).
    pub fn width(&self) -> i64 {
        self.right - self.left + 1
    }

    /// Height in pixels.
    pub fn height(&self) -> i64 {
        self.bottom - self.top + 1
    }

    /// Area, zero for an empty rectangle.
    pub fn area(&self) -> i64 {
        if self.width() <= 0 || self.height() <= 0 {
            0
        } else {
            self.width() * self.height()
        }
    }

    /// Intersection (may be empty).
    pub fn intersect(&self, o: &Rect) -> Rect {
        Rect {
            left: self.left.max(o.left),
            top: self.top.max(o.top),
            right: self.right.min(o.right),
            bottom: self.bottom.min(o.bottom),
        }
    }

    /// Intersection over union.
    pub fn iou(&self, o: &Rect) -> f64 {
        let i = self.intersect(o).area() as f64;
        let u = (self.area() + o.area()) as f64 - i;
        if u <= 0.0 {
            0.0
        } else {
            i / u
        }
    }
}

/// A landmark position in image pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Column.
    pub x: f64,
    /// Row.
    pub y: f64,
}
