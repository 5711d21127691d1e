//! The MI programs and transactions the emulator knows, with their input and output fields
//! (what `MRS001MI` reports).

use crate::data::TableDef;
use crate::data::tables::{CIDMAS, MITMAS, OCUSMA, OOHEAD, OOLINE};

/// An input or a fixed output field.
#[derive(Debug)]
pub(crate) struct FieldDef {
    pub name: &'static str,
    pub desc: &'static str,
    pub ty: &'static str,
    pub len: u16,
    pub mandatory: bool,
}

const fn f(
    name: &'static str,
    ty: &'static str,
    len: u16,
    mandatory: bool,
    desc: &'static str,
) -> FieldDef {
    FieldDef {
        name,
        desc,
        ty,
        len,
        mandatory,
    }
}

/// Where the output fields come from.
#[derive(Debug)]
pub(crate) enum Outputs {
    Fields(&'static [FieldDef]),
    /// A table's columns without their prefix (`deleted` excluded).
    Table(&'static TableDef),
}

/// What a transaction does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Handler {
    /// Key-ordered list from the key input (`CUNO`, `ITNO`, `SUNO`).
    List(&'static TableDef, &'static str),
    /// One record by key.
    Get(&'static TableDef, &'static str),
    /// Order lines of one order (`ORNO`).
    OrderLines,
    LstPrograms,
    LstTransactions,
    LstFields,
    ExportSelect,
    UserData,
    /// `TST001MI/Lst10Out`, the test program of Infor KB 2159861.
    TestLst10,
}

#[derive(Debug)]
pub(crate) struct TransDef {
    pub name: &'static str,
    pub desc: &'static str,
    pub multi: bool,
    pub inputs: &'static [FieldDef],
    pub outputs: Outputs,
    pub handler: Handler,
}

#[derive(Debug)]
pub(crate) struct ProgDef {
    pub name: &'static str,
    pub desc: &'static str,
    pub transactions: &'static [TransDef],
}

impl ProgDef {
    pub fn transaction(&self, name: &str) -> Option<&'static TransDef> {
        // The catalogue is 'static, so is every transaction in it.
        let ts: &'static [TransDef] = self.transactions;
        ts.iter().find(|t| t.name.eq_ignore_ascii_case(name))
    }
}

pub(crate) fn program(name: &str) -> Option<&'static ProgDef> {
    PROGRAMS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

const CONO_IN: FieldDef = f("CONO", "N", 3, false, "Company");

pub(crate) static PROGRAMS: [ProgDef; 8] = [
    ProgDef {
        name: "CRS610MI",
        desc: "Customer. Interface",
        transactions: &[
            TransDef {
                name: "LstByNumber",
                desc: "List customers by number",
                multi: true,
                inputs: &[CONO_IN, f("CUNO", "A", 10, false, "Customer")],
                outputs: Outputs::Table(&OCUSMA),
                handler: Handler::List(&OCUSMA, "CUNO"),
            },
            TransDef {
                name: "GetBasicData",
                desc: "Get customer basic data",
                multi: false,
                inputs: &[CONO_IN, f("CUNO", "A", 10, true, "Customer")],
                outputs: Outputs::Table(&OCUSMA),
                handler: Handler::Get(&OCUSMA, "CUNO"),
            },
        ],
    },
    ProgDef {
        name: "MMS200MI",
        desc: "Item. Interface",
        transactions: &[
            TransDef {
                name: "LstByNumber",
                desc: "List items by number",
                multi: true,
                inputs: &[CONO_IN, f("ITNO", "A", 15, false, "Item number")],
                outputs: Outputs::Table(&MITMAS),
                handler: Handler::List(&MITMAS, "ITNO"),
            },
            TransDef {
                name: "Get",
                desc: "Get item basic data",
                multi: false,
                inputs: &[CONO_IN, f("ITNO", "A", 15, true, "Item number")],
                outputs: Outputs::Table(&MITMAS),
                handler: Handler::Get(&MITMAS, "ITNO"),
            },
        ],
    },
    ProgDef {
        name: "CRS620MI",
        desc: "Supplier. Interface",
        transactions: &[
            TransDef {
                name: "LstSuppliers",
                desc: "List suppliers",
                multi: true,
                inputs: &[CONO_IN, f("SUNO", "A", 10, false, "Supplier")],
                outputs: Outputs::Table(&CIDMAS),
                handler: Handler::List(&CIDMAS, "SUNO"),
            },
            TransDef {
                name: "GetBasicData",
                desc: "Get supplier basic data",
                multi: false,
                inputs: &[CONO_IN, f("SUNO", "A", 10, true, "Supplier")],
                outputs: Outputs::Table(&CIDMAS),
                handler: Handler::Get(&CIDMAS, "SUNO"),
            },
        ],
    },
    ProgDef {
        name: "OIS100MI",
        desc: "Customer order. Interface",
        transactions: &[
            TransDef {
                name: "LstLine",
                desc: "List order lines",
                multi: true,
                inputs: &[
                    CONO_IN,
                    f("ORNO", "A", 10, true, "Customer order number"),
                    f("PONR", "N", 5, false, "Order line number"),
                    f("POSX", "N", 2, false, "Line suffix"),
                ],
                outputs: Outputs::Table(&OOLINE),
                handler: Handler::OrderLines,
            },
            TransDef {
                name: "GetHead",
                desc: "Get order head",
                multi: false,
                inputs: &[CONO_IN, f("ORNO", "A", 10, true, "Customer order number")],
                outputs: Outputs::Table(&OOHEAD),
                handler: Handler::Get(&OOHEAD, "ORNO"),
            },
        ],
    },
    ProgDef {
        name: "MRS001MI",
        desc: "MI metadata. Interface",
        transactions: &[
            TransDef {
                name: "LstPrograms",
                desc: "List programs",
                multi: true,
                inputs: &[],
                outputs: Outputs::Fields(&[
                    f("MINM", "A", 10, false, "Program name"),
                    f("TX40", "A", 40, false, "Description"),
                ]),
                handler: Handler::LstPrograms,
            },
            TransDef {
                name: "LstTransactions",
                desc: "List transactions",
                multi: true,
                inputs: &[f("MINM", "A", 10, true, "Program name")],
                outputs: Outputs::Fields(&[
                    f("MINM", "A", 10, false, "Program name"),
                    f("TRNM", "A", 32, false, "Transaction name"),
                    f("TX40", "A", 40, false, "Description"),
                    f("MULT", "A", 1, false, "Multiple records"),
                ]),
                handler: Handler::LstTransactions,
            },
            TransDef {
                name: "LstFields",
                desc: "List fields",
                multi: true,
                inputs: &[
                    f("MINM", "A", 10, true, "Program name"),
                    f("TRNM", "A", 32, true, "Transaction name"),
                    f("TRTP", "A", 1, true, "Transaction type I/O"),
                ],
                outputs: Outputs::Fields(&[
                    f("MINM", "A", 10, false, "Program name"),
                    f("TRNM", "A", 32, false, "Transaction name"),
                    f("TRTP", "A", 1, false, "Transaction type"),
                    f("FLNM", "A", 6, false, "Field name"),
                    f("FLDS", "A", 60, false, "Field description"),
                    f("FRPO", "N", 5, false, "From position"),
                    f("TOPO", "N", 5, false, "To position"),
                    f("LENG", "N", 5, false, "Length"),
                    f("MAND", "A", 1, false, "Mandatory"),
                    f("TYPE", "A", 1, false, "Field type"),
                ]),
                handler: Handler::LstFields,
            },
        ],
    },
    ProgDef {
        name: "EXPORTMI",
        desc: "Export data. Interface",
        transactions: &[TransDef {
            name: "Select",
            desc: "Select from a table",
            multi: true,
            inputs: &[
                f("SEPC", "A", 1, false, "Separator"),
                f("HDRS", "N", 1, false, "Header row"),
                f("QERY", "A", 1024, true, "Query"),
            ],
            outputs: Outputs::Fields(&[f("REPL", "A", 3000, false, "Reply")]),
            handler: Handler::ExportSelect,
        }],
    },
    ProgDef {
        name: "MNS150MI",
        desc: "User. Interface",
        transactions: &[TransDef {
            name: "GetUserData",
            desc: "Get user data",
            multi: false,
            inputs: &[],
            outputs: Outputs::Fields(&[
                f("USID", "A", 10, false, "User"),
                f("NAME", "A", 36, false, "Name"),
                f("CONO", "N", 3, false, "Company"),
                f("DIVI", "A", 3, false, "Division"),
                f("LANC", "A", 2, false, "Language"),
                f("DTFM", "A", 3, false, "Date format"),
                f("DCFM", "A", 1, false, "Decimal format"),
                f("TIZO", "A", 10, false, "Time zone"),
            ]),
            handler: Handler::UserData,
        }],
    },
    ProgDef {
        name: "TST001MI",
        desc: "Test program (Infor KB 2159861)",
        transactions: &[TransDef {
            name: "Lst10Out",
            desc: "List ten output fields",
            multi: true,
            inputs: &[
                f("RCNT", "N", 8, false, "Record count (negative: fail after)"),
                f("RETT", "A", 1, false, "Return type (set: fail)"),
            ],
            outputs: Outputs::Fields(&[
                f("F001", "A", 8, false, "Text field"),
                f("F002", "A", 8, false, "Text field"),
                f("F003", "A", 8, false, "Text field"),
                f("F004", "A", 8, false, "Text field"),
                f("F005", "A", 8, false, "Text field"),
                f("F006", "A", 8, false, "Text field"),
                f("F007", "A", 8, false, "Text field"),
                f("F008", "A", 8, false, "Text field"),
                f("F009", "A", 8, false, "Text field"),
                f("F010", "A", 8, false, "Text field"),
            ]),
            handler: Handler::TestLst10,
        }],
    },
];

/// An output field's metadata.
#[derive(Debug, Clone)]
pub(crate) struct OutField {
    pub name: &'static str,
    pub ty: &'static str,
    pub len: u16,
    pub desc: &'static str,
    /// Column of the transaction's table, for table outputs.
    pub col: Option<usize>,
}

impl TransDef {
    pub fn output_fields(&self) -> Vec<OutField> {
        match &self.outputs {
            Outputs::Fields(fs) => fs
                .iter()
                .map(|f| OutField {
                    name: f.name,
                    ty: f.ty,
                    len: f.len,
                    desc: f.desc,
                    col: None,
                })
                .collect(),
            Outputs::Table(t) => t
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.kind != crate::data::Kind::Bool)
                .map(|(i, c)| OutField {
                    name: t.mi_name(i),
                    ty: c.kind.m3_letter(),
                    len: c.len,
                    desc: c.desc,
                    col: Some(i),
                })
                .collect(),
        }
    }
}
