// Package cart computes a cart's summary from the shop's cart cookie
// ("1.3.3": one product id per item) and a price list. The origin (shop)
// and the demo's edge function (cartfn, built for wasip1) run this same
// code, so the two answers can be compared byte for byte.
package cart

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// Item is a product of the price list.
type Item struct {
	ID    int     `json:"id"`
	Name  string  `json:"name"`
	Price float64 `json:"price"`
}

// Line is one product in the cart.
type Line struct {
	ID       int     `json:"id"`
	Name     string  `json:"name"`
	Qty      int     `json:"qty"`
	Price    float64 `json:"price"`
	Subtotal float64 `json:"subtotal"`
}

// Summary is the cart's answer.
type Summary struct {
	Lines    []Line  `json:"lines"`
	Items    int     `json:"items"`
	Total    float64 `json:"total"`
	Currency string  `json:"currency"`
	Unknown  int     `json:"unknown,omitempty"` // ids not in the price list
}

// maxItems bounds what a cookie can make it count.
const maxItems = 1000

// Compute sums the cart in cookie against prices.
func Compute(cookie string, prices []Item) Summary {
	s := Summary{Lines: []Line{}, Currency: "USD"}
	byID := map[int]int{} // id → index in s.Lines
	for i, f := range strings.Split(cookie, ".") {
		if f == "" || i >= maxItems {
			continue
		}
		id, err := strconv.Atoi(f)
		k := slices.IndexFunc(prices, func(p Item) bool { return p.ID == id })
		if err != nil || k < 0 {
			s.Unknown++
			continue
		}
		j, ok := byID[id]
		if !ok {
			j = len(s.Lines)
			byID[id] = j
			s.Lines = append(s.Lines, Line{ID: id, Name: prices[k].Name, Price: prices[k].Price})
		}
		s.Lines[j].Qty++
		s.Items++
	}
	for i := range s.Lines {
		l := &s.Lines[i]
		l.Subtotal = float64(int64(float64(l.Qty)*l.Price*100+0.5)) / 100
		s.Total += l.Subtotal
	}
	s.Total = float64(int64(s.Total*100+0.5)) / 100
	return s
}

// JSON is the summary as the answer's body.
func (s Summary) JSON() []byte {
	b, _ := json.Marshal(s)
	return b
}
