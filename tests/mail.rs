//! Mail through a real SMTP sink (being written).
