//! Reading and writing the operator's records: rentals, invoices, facilities, contacts and
//! agreements, as the portal shows them to a customer, the console to staff, and the API
//! keeps them in step with the operator's systems and reads them back (with the portal
//! accounts), a keyset page at a time.

use crate::error::AppError;
use crate::services::Services;
use crate::store::{
    Account, AccountRecord, AgreementRecord, ContactFields, ContactRecord, ContactView,
    CustomerRecord, Facility, FacilityFields, FacilityRecord, Invoice, InvoiceFields,
    InvoiceFilter, InvoiceRecord, Page, PaymentMethod, Rental, RentalFields, RentalRecord,
    Storefront, Unresolved, Upserted,
};

/// What an upsert did, or which reference in it names nothing of the storefront.
pub type Upsert<T> = Result<Result<Upserted<T>, Unresolved>, AppError>;

/// The dashboard: the customer's current rentals and the facilities they rent at.
pub struct Dashboard {
    pub rentals: Vec<Rental>,
    pub facilities: Vec<Facility>,
}

pub async fn dashboard(
    svc: &Services,
    storefront_id: i64,
    account_id: i64,
) -> Result<Dashboard, AppError> {
    let rentals = svc.store.current_rentals(storefront_id, account_id).await?;
    let facilities = svc
        .store
        .account_facilities(storefront_id, account_id)
        .await?;
    Ok(Dashboard {
        rentals,
        facilities,
    })
}

/// The rental history: past rentals, and every invoice of the account (the page puts each
/// under its rental).
pub struct History {
    pub rentals: Vec<Rental>,
    pub invoices: Vec<Invoice>,
}

pub async fn history(
    svc: &Services,
    storefront_id: i64,
    account_id: i64,
) -> Result<History, AppError> {
    let rentals = svc.store.past_rentals(storefront_id, account_id).await?;
    let invoices = svc
        .store
        .account_invoices(storefront_id, account_id, InvoiceFilter::All)
        .await?;
    Ok(History { rentals, invoices })
}

/// One of the customer's rentals with its facility; `None` for a rental that is not theirs.
pub async fn rental(
    svc: &Services,
    storefront_id: i64,
    account_id: i64,
    rental_id: i64,
) -> Result<Option<(Rental, Option<Facility>)>, AppError> {
    let rental = svc
        .store
        .account_rental(storefront_id, account_id, rental_id)
        .await?;
    let facilities = svc.store.facilities(storefront_id).await?;
    Ok(rental.map(|rental| {
        let facility = facilities.into_iter().find(|f| f.id == rental.facility_id);
        (rental, facility)
    }))
}

/// The signed agreement (file name, PDF) of one of the customer's rentals.
pub async fn agreement(
    svc: &Services,
    storefront_id: i64,
    account_id: i64,
    rental_id: i64,
) -> Result<Option<(String, Vec<u8>)>, AppError> {
    Ok(svc
        .store
        .rental_agreement(storefront_id, account_id, rental_id)
        .await?)
}

/// The billing page's lists: the account's invoices (filtered) and its saved payment methods.
pub async fn invoices_and_methods(
    svc: &Services,
    storefront_id: i64,
    account_id: i64,
    filter: InvoiceFilter,
) -> Result<(Vec<Invoice>, Vec<PaymentMethod>), AppError> {
    let invoices = svc
        .store
        .account_invoices(storefront_id, account_id, filter)
        .await?;
    let methods = svc.store.payment_methods(account_id).await?;
    Ok((invoices, methods))
}

/// One of the account's invoices (its receipt once paid).
pub async fn invoice(
    svc: &Services,
    storefront_id: i64,
    account_id: i64,
    invoice_id: i64,
) -> Result<Option<Invoice>, AppError> {
    Ok(svc
        .store
        .account_invoice(storefront_id, account_id, invoice_id)
        .await?)
}

/// Every storefront (the console's home for platform staff).
pub async fn storefronts(svc: &Services) -> Result<Vec<Storefront>, AppError> {
    Ok(svc.store.storefronts().await?)
}

/// A storefront's console page: its facilities, and a page of its customers, newest first
/// (those whose name or email address contains `q`, when given), older ones from `before`.
pub async fn storefront_page(
    svc: &Services,
    storefront_id: i64,
    q: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<Facility>, Page<Account>), AppError> {
    let facilities = svc.store.facilities(storefront_id).await?;
    let customers = svc
        .store
        .customers_page(storefront_id, q, before, limit)
        .await?;
    Ok((facilities, customers))
}

/// A customer's record in the console, with the storefront's unlinked contacts when the
/// viewer may link them (`with_unlinked`).
pub async fn customer_record(
    svc: &Services,
    storefront_id: i64,
    account_id: i64,
    with_unlinked: bool,
) -> Result<Option<(CustomerRecord, Vec<ContactView>)>, AppError> {
    let Some(record) = svc.store.customer_record(storefront_id, account_id).await? else {
        return Ok(None);
    };
    let unlinked = if with_unlinked {
        svc.store.unlinked_contacts(storefront_id, "").await?
    } else {
        Vec::new()
    };
    Ok(Some((record, unlinked)))
}

/// The id of the storefront's rental with this reference.
pub async fn rental_id_by_ref(
    svc: &Services,
    storefront_id: i64,
    external_ref: &str,
) -> Result<Option<i64>, AppError> {
    Ok(svc
        .store
        .rental_id_by_ref(storefront_id, external_ref)
        .await?)
}

pub async fn put_facility(
    svc: &Services,
    storefront_id: i64,
    external_ref: &str,
    fields: &FacilityFields,
) -> Result<Upserted<FacilityRecord>, AppError> {
    Ok(svc
        .store
        .upsert_facility(storefront_id, external_ref, fields, svc.now())
        .await?)
}

pub async fn put_contact(
    svc: &Services,
    storefront_id: i64,
    external_ref: &str,
    fields: &ContactFields,
) -> Upsert<ContactRecord> {
    Ok(svc
        .store
        .upsert_contact(storefront_id, external_ref, fields, svc.now())
        .await?)
}

pub async fn put_rental(
    svc: &Services,
    storefront_id: i64,
    external_ref: &str,
    fields: &RentalFields,
) -> Upsert<RentalRecord> {
    Ok(svc
        .store
        .upsert_rental(storefront_id, external_ref, fields, svc.now())
        .await?)
}

pub async fn put_invoice(
    svc: &Services,
    storefront_id: i64,
    external_ref: &str,
    fields: &InvoiceFields,
) -> Upsert<InvoiceRecord> {
    Ok(svc
        .store
        .upsert_invoice(storefront_id, external_ref, fields, svc.now())
        .await?)
}

/// Stores a rental's signed agreement; `None` when the storefront has no such rental.
pub async fn put_agreement(
    svc: &Services,
    storefront_id: i64,
    rental_ref: &str,
    file_name: &str,
    pdf: &[u8],
) -> Result<Option<Upserted<AgreementRecord>>, AppError> {
    Ok(svc
        .store
        .put_agreement(storefront_id, rental_ref, file_name, pdf, svc.now())
        .await?)
}

// The API's read-back: a page of the storefront's records of one kind, newest first (`before`
// is the previous page's `next`), or one record by reference; `None` for another storefront's.

pub async fn facilities_page(
    svc: &Services,
    storefront_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<FacilityRecord>, AppError> {
    Ok(svc
        .store
        .facility_records(storefront_id, before, limit)
        .await?)
}

pub async fn facility_record(
    svc: &Services,
    storefront_id: i64,
    external_ref: &str,
) -> Result<Option<FacilityRecord>, AppError> {
    Ok(svc
        .store
        .facility_record(storefront_id, external_ref)
        .await?)
}

pub async fn contacts_page(
    svc: &Services,
    storefront_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<ContactRecord>, AppError> {
    Ok(svc
        .store
        .contact_records(storefront_id, before, limit)
        .await?)
}

pub async fn contact_record(
    svc: &Services,
    storefront_id: i64,
    external_ref: &str,
) -> Result<Option<ContactRecord>, AppError> {
    Ok(svc
        .store
        .contact_record(storefront_id, external_ref)
        .await?)
}

pub async fn rentals_page(
    svc: &Services,
    storefront_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<RentalRecord>, AppError> {
    Ok(svc
        .store
        .rental_records(storefront_id, before, limit)
        .await?)
}

pub async fn rental_record(
    svc: &Services,
    storefront_id: i64,
    external_ref: &str,
) -> Result<Option<RentalRecord>, AppError> {
    Ok(svc.store.rental_record(storefront_id, external_ref).await?)
}

pub async fn invoices_page(
    svc: &Services,
    storefront_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<InvoiceRecord>, AppError> {
    Ok(svc
        .store
        .invoice_records(storefront_id, before, limit)
        .await?)
}

pub async fn invoice_record(
    svc: &Services,
    storefront_id: i64,
    external_ref: &str,
) -> Result<Option<InvoiceRecord>, AppError> {
    Ok(svc
        .store
        .invoice_record(storefront_id, external_ref)
        .await?)
}

/// A page of the storefront's portal accounts with their contacts.
pub async fn accounts_page(
    svc: &Services,
    storefront_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<AccountRecord>, AppError> {
    Ok(svc
        .store
        .account_records(storefront_id, before, limit)
        .await?)
}

/// The storefront's portal account with this id and its contacts.
pub async fn account_record(
    svc: &Services,
    storefront_id: i64,
    account_id: i64,
) -> Result<Option<AccountRecord>, AppError> {
    Ok(svc.store.account_record(storefront_id, account_id).await?)
}
