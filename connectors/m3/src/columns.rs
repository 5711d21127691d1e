//! The columns of the data each task returns: names, M3 types and descriptions. The
//! record schemas are generated from them, and they are the fallback types when an
//! answer carries no metadata.

use ionport_infor_mi::MiType;
pub use ionport_infor_mi::columns::{MiColumn as Col, names, schema, selected, types};

use MiType::{Alpha as A, Date as D, Numeric as N};

/// The customer master's columns: `CRS610MI/LstByNumber` outputs them as they are, the
/// table `OCUSMA` (read by EXPORTMI) under its prefix `OK`.
macro_rules! customer {
    ($prefix:literal) => {
        &[
            (concat!($prefix, "CONO"), N, true, "Company"),
            (concat!($prefix, "CUNO"), A, false, "Customer"),
            (concat!($prefix, "CUNM"), A, false, "Customer name"),
            (concat!($prefix, "CUA1"), A, false, "Customer address 1"),
            (concat!($prefix, "TOWN"), A, false, "City"),
            (concat!($prefix, "CSCD"), A, false, "Country"),
            (concat!($prefix, "PHNO"), A, false, "Telephone number 1"),
            (concat!($prefix, "CUCD"), A, false, "Currency"),
            (concat!($prefix, "STAT"), A, false, "Status"),
            (concat!($prefix, "CUTP"), N, true, "Customer type"),
            (concat!($prefix, "CRLM"), N, false, "Credit limit 1"),
            (concat!($prefix, "RGDT"), D, false, "Entry date"),
            (concat!($prefix, "LMDT"), D, false, "Change date"),
            (concat!($prefix, "LMTS"), N, true, "Timestamp"),
            (concat!($prefix, "CHNO"), N, true, "Change number"),
        ]
    };
}

/// `CRS610MI/LstByNumber` outputs.
pub const CUSTOMER: &[Col] = customer!("");

/// `MMS200MI/LstByNumber` outputs.
pub const ITEM: &[Col] = &[
    ("CONO", N, true, "Company"),
    ("ITNO", A, false, "Item number"),
    ("ITDS", A, false, "Name"),
    ("FUDS", A, false, "Description 2"),
    ("ITTY", A, false, "Item type"),
    ("ITGR", A, false, "Item group"),
    ("UNMS", A, false, "Basic unit of measure"),
    ("STAT", A, false, "Status"),
    ("NEWE", N, false, "Net weight"),
    ("SAPR", N, false, "Sales price"),
    ("RGDT", D, false, "Entry date"),
    ("LMDT", D, false, "Change date"),
    ("LMTS", N, true, "Timestamp"),
    ("CHNO", N, true, "Change number"),
];

/// `CRS620MI/LstSuppliers` outputs.
pub const SUPPLIER: &[Col] = &[
    ("CONO", N, true, "Company"),
    ("SUNO", A, false, "Supplier"),
    ("SUNM", A, false, "Supplier name"),
    ("TOWN", A, false, "City"),
    ("CSCD", A, false, "Country"),
    ("CUCD", A, false, "Currency"),
    ("PHNO", A, false, "Telephone number 1"),
    ("STAT", A, false, "Status"),
    ("RGDT", D, false, "Entry date"),
    ("LMDT", D, false, "Change date"),
    ("LMTS", N, true, "Timestamp"),
    ("CHNO", N, true, "Change number"),
];

/// `OIS100MI/LstLine` outputs.
pub const ORDER_LINE: &[Col] = &[
    ("CONO", N, true, "Company"),
    ("DIVI", A, false, "Division"),
    ("ORNO", A, false, "Customer order number"),
    ("PONR", N, true, "Order line number"),
    ("POSX", N, true, "Line suffix"),
    ("ITNO", A, false, "Item number"),
    ("CUNO", A, false, "Customer"),
    ("ORQT", N, false, "Ordered quantity"),
    ("SAPR", N, false, "Sales price"),
    ("LNAM", N, false, "Line amount"),
    ("ORST", A, false, "Status"),
    ("DWDT", D, false, "Requested delivery date"),
    ("LMDT", D, false, "Change date"),
    ("LMTS", N, true, "Timestamp"),
    ("CHNO", N, true, "Change number"),
];

/// The customer master table `OCUSMA`, as `EXPORTMI/Select` returns it.
pub const OCUSMA: &[Col] = customer!("OK");
